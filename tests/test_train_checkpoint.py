"""A training checkpoint's manifest pins every file's size and sha256 to its step, and every way a checkpoint
can fail its check falls back to an older one (or to step 0) with a warning that says what was wrong."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mythbench.core.fileio import temp_path
from mythbench.training.train_checkpoint import MANIFEST, load_latest, save_checkpoint

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
    assert "training starts over from step 0" in caplog.text


def test_a_killed_writer_s_temporary_is_removed_and_named_in_the_log(tmp_path, caplog):
    save_checkpoint(tmp_path, 2, {"a.bin": b"first", "b.bin": b"second"})
    stale = temp_path(tmp_path / "ckpt-00000004")
    stale.mkdir()
    with caplog.at_level(logging.INFO, logger="mythbench"):
        assert load_latest(tmp_path, NAMES).step == 2
    assert not stale.exists()
    assert f"removed {stale}, left by a writer that was killed" in caplog.text
