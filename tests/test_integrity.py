"""Files a later command trusts are checked by content, not by presence or size: a sweep cell is done only
with its result.json, a checkpoint file only with its sha256 and its step, and the final weights `eval`
loads only with theirs. A checkpoint that fails its check falls back to an older one (or to step 0)
with a warning saying what was wrong."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_crash_consistency import _train
from test_train import tiny

from mythbench.core.errors import ConfigError
from mythbench.core.fileio import temp_path
from mythbench.experiments.cells import Cell
from mythbench.experiments.sweep import execute
from mythbench.training.reevaluate import load_checkpoint
from mythbench.training.train import WEIGHTS, WEIGHTS_DIGEST, write_model_card
from mythbench.training.train_checkpoint import MANIFEST, load_latest, save_checkpoint


def _flip_one_byte(path: Path, at: int = -1) -> None:
    """The same size, one byte different: what a size check cannot see."""
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


class _Recorder:
    """A backend that records the cells it is asked to run and runs none of them."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def run(self, cells):
        self.asked += [c.label for c in cells]
        yield from ((c, "not run") for c in cells)

    def close(self) -> None:
        pass


def test_a_cell_is_done_only_when_its_result_json_exists(tmp_path):
    cell = Cell(str(tmp_path), "rdt", 0, plan=None, cfg=None)
    seed_dir = tmp_path / "models" / "rdt" / "seed0"
    (seed_dir / "ckpt-00000002").mkdir(parents=True)  # a started cell: checkpoint, card and weights
    (seed_dir / "config.json").write_text("{}")
    (seed_dir / WEIGHTS).write_bytes(b"")
    assert not cell.done()
    backend = _Recorder()
    assert execute([cell], backend, retries=0) == {cell: "not run"} and backend.asked == [cell.label]
    (seed_dir / "result.json").write_text("{}")
    assert cell.done()
    assert execute([cell], _Recorder(), retries=0) == {}


def test_a_checkpoint_file_with_one_flipped_byte_is_inconsistent(tmp_path):
    save_checkpoint(tmp_path, 2, {"a.bin": b"first" * 10, "b.bin": b"second"})
    save_checkpoint(tmp_path, 4, {"a.bin": b"third" * 10, "b.bin": b"fourth"})
    _flip_one_byte(tmp_path / "ckpt-00000004" / "a.bin")
    found = load_latest(tmp_path, {"a.bin", "b.bin"})
    assert found is None  # step 2 was removed when step 4 was saved, and step 4 no longer verifies
    assert not (tmp_path / "ckpt-00000004").exists()


def test_a_manifest_whose_step_is_not_its_directory_s_is_inconsistent(tmp_path):
    save_checkpoint(tmp_path, 2, {"a.bin": b"weights"})
    (tmp_path / "ckpt-00000002").rename(tmp_path / "ckpt-00000008")  # files and checksums intact
    assert json.loads((tmp_path / "ckpt-00000008" / MANIFEST).read_text())["step"] == 2
    assert load_latest(tmp_path, {"a.bin"}) is None


@pytest.fixture
def trained(tmp_path) -> Path:
    """A seed directory as training leaves it: the card, the final weights and their sha256."""
    ckpt = tmp_path / "seed0"
    _train(ckpt)
    write_model_card(ckpt, "rdt", tiny().cfg.to_dict(), {})
    return ckpt


def test_the_final_weights_load_only_with_their_checksum(trained):
    load_checkpoint(trained)  # intact
    _flip_one_byte(trained / WEIGHTS)  # the same size: safetensors would load it
    with pytest.raises(ConfigError, match=f"{WEIGHTS}: does not match its checksum in {WEIGHTS_DIGEST}"):
        load_checkpoint(trained)
    _flip_one_byte(trained / WEIGHTS)
    load_checkpoint(trained)
    (trained / WEIGHTS_DIGEST).unlink()
    with pytest.raises(ConfigError, match=f"{WEIGHTS_DIGEST}: missing"):
        load_checkpoint(trained)


NAMES = {"a.bin", "b.bin"}
file_sets = st.dictionaries(st.sampled_from(["a.bin", "b.bin", "state.pt"]), st.binary(max_size=64), min_size=1)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=file_sets, step=st.integers(0, 10**8 - 1))
def test_the_manifest_lists_every_file_s_size_and_sha256_and_loads_back(tmp_path_factory, files, step):
    ckpt_dir = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(ckpt_dir, step, files)
    manifest = json.loads((ckpt_dir / f"ckpt-{step:08d}" / MANIFEST).read_text())
    assert manifest == {"step": step, "files": {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                                                for name, data in files.items()}}
    found = load_latest(ckpt_dir, set(files))
    assert (found.step, found.files) == (step, files)


def _manifest_not_json(ckpt: Path) -> None:
    (ckpt / MANIFEST).write_text("{not json")


def _manifest_a_list(ckpt: Path) -> None:
    (ckpt / MANIFEST).write_text("[]")


def _manifest_lists_other_files(ckpt: Path) -> None:
    manifest = json.loads((ckpt / MANIFEST).read_text())
    del manifest["files"]["b.bin"]
    (ckpt / MANIFEST).write_text(json.dumps(manifest))


def _file_missing(ckpt: Path) -> None:
    (ckpt / "b.bin").unlink()


def _file_changed(ckpt: Path) -> None:
    (ckpt / "b.bin").write_bytes(b"SECOND")  # the same size


@pytest.mark.parametrize(("damage", "reason"), [
    (_manifest_not_json, f"{MANIFEST}: "),
    (_manifest_a_list, f"{MANIFEST} does not describe step 2 with files ['a.bin', 'b.bin']"),
    (_manifest_lists_other_files, f"{MANIFEST} does not describe step 2 with files ['a.bin', 'b.bin']"),
    (_file_missing, "b.bin: No such file or directory"),
    (_file_changed, f"b.bin (6 bytes) does not match its checksum in {MANIFEST}"),
])
def test_a_damaged_checkpoint_is_removed_with_a_warning_naming_what_is_wrong(tmp_path, caplog, damage, reason):
    save_checkpoint(tmp_path, 2, {"a.bin": b"first", "b.bin": b"second"})
    damage(tmp_path / "ckpt-00000002")
    with caplog.at_level(logging.WARNING, logger="mythbench"):
        assert load_latest(tmp_path, NAMES) is None
    assert not (tmp_path / "ckpt-00000002").exists()
    assert f"is inconsistent ({reason}" in caplog.text
    assert caplog.messages[-1] == f"{tmp_path}: no consistent checkpoint left; training starts over from step 0"


def test_a_damaged_newest_checkpoint_falls_back_to_the_older_one_and_says_so(tmp_path, caplog):
    save_checkpoint(tmp_path, 2, {"a.bin": b"first", "b.bin": b"second"})
    kept = (tmp_path / "ckpt-00000002").rename(tmp_path / "kept")  # saving step 4 removes older checkpoints
    save_checkpoint(tmp_path, 4, {"a.bin": b"third", "b.bin": b"fourth"})
    kept.rename(tmp_path / "ckpt-00000002")
    assert load_latest(tmp_path, NAMES).files == {"a.bin": b"third", "b.bin": b"fourth"}  # the newest first
    _file_changed(tmp_path / "ckpt-00000004")
    with caplog.at_level(logging.WARNING, logger="mythbench"):
        assert load_latest(tmp_path, NAMES).files == {"a.bin": b"first", "b.bin": b"second"}
    assert caplog.messages == [
        f"checkpoint {tmp_path / 'ckpt-00000004'} is inconsistent (b.bin (6 bytes) does not match its checksum in "
        f"{MANIFEST}); it is removed",
        f"{tmp_path}: resuming from step 2, the last consistent checkpoint"]


def test_a_killed_writer_s_temporary_is_removed_and_named_in_the_log(tmp_path, caplog):
    save_checkpoint(tmp_path, 2, {"a.bin": b"first", "b.bin": b"second"})
    stale = temp_path(tmp_path / "ckpt-00000004")
    stale.mkdir()
    with caplog.at_level(logging.INFO, logger="mythbench"):
        assert load_latest(tmp_path, NAMES).step == 2
    assert not stale.exists()
    assert caplog.messages == [f"removed {stale}, left by a writer that was killed"]
