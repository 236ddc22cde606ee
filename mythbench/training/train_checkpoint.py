"""Crash-consistent training checkpoints: the weights and optimiser state of one step, complete or absent.

A checkpoint is a directory `ckpt-<step>` holding its files and `manifest.json` (size and sha256 of each).
It is written under a temporary name and made visible by one rename, so a kill at any instant leaves the
whole checkpoint or none of it; the manifest, checked on every resume, catches what a rename cannot (a
file truncated or replaced afterwards). Once a newer checkpoint is in place the older ones are removed; a
kill during that removal leaves a partial old directory, which fails its check and is removed on resume.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from mythbench.core.errors import ConfigError
from mythbench.core.fileio import fsync_dir, make_dir, remove_stale_temps, remove_tree, rename, temp_path, write_file
from mythbench.results.safejson import parse_json_bytes

MANIFEST = "manifest.json"
_NAME = re.compile(r"ckpt-(\d{8})")
log = logging.getLogger("mythbench")


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path
    files: dict[str, bytes]


class Inconsistent(Exception):
    """A checkpoint directory whose files do not match its manifest."""


def save_checkpoint(ckpt_dir: Path, step: int, files: dict[str, bytes]) -> None:
    """Write `files` as the checkpoint of `step`, visible only once complete; then drop older checkpoints."""
    final = Path(ckpt_dir) / f"ckpt-{step:08d}"
    tmp = temp_path(final)
    make_dir(tmp)
    manifest = {"step": step, "files": {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                                        for name, data in files.items()}}
    for name, data in files.items():
        write_file(tmp / name, data)
    write_file(tmp / MANIFEST, json.dumps(manifest, indent=1).encode())
    fsync_dir(tmp)
    rename(tmp, final)  # the commit point
    for old_step, old in _listed(ckpt_dir):
        if old_step < step:
            remove_tree(old)


def load_latest(ckpt_dir: Path, names: set[str]) -> Checkpoint | None:
    """The newest consistent checkpoint holding exactly `names`, or None. Stale temporaries and inconsistent
    checkpoints are removed, and every fallback is logged as a warning, so a resume never passes silently."""
    for path in remove_stale_temps(ckpt_dir):
        log.info("removed %s, left by a writer that was killed", path)
    dropped: list[str] = []
    for step, path in _listed(ckpt_dir):
        try:
            files = _verified(path, step, names)
        except Inconsistent as e:
            log.warning("checkpoint %s is inconsistent (%s); it is removed", path, e)
            remove_tree(path)
            dropped.append(path.name)
            continue
        if dropped:
            log.warning("%s: resuming from step %d, the last consistent checkpoint", ckpt_dir, step)
        return Checkpoint(step, path, files)
    if dropped:
        log.warning("%s: no consistent checkpoint left; training starts over from step 0", ckpt_dir)
    return None


def _listed(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """(step, directory) of every checkpoint, newest first."""
    found = [(int(m.group(1)), p) for p in Path(ckpt_dir).glob("ckpt-*") if (m := _NAME.fullmatch(p.name))]
    return sorted(found, reverse=True)


def _verified(path: Path, step: int, names: set[str]) -> dict[str, bytes]:
    """The checkpoint's files, read once and checked against the manifest; Inconsistent says why not."""
    try:
        manifest = parse_json_bytes((path / MANIFEST).read_bytes())
    except (OSError, ConfigError) as e:
        raise Inconsistent(f"{MANIFEST}: {e}") from None
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, dict) or set(listed) != names or manifest.get("step") != step:
        raise Inconsistent(f"{MANIFEST} does not describe step {step} with files {sorted(names)}")
    files = {}
    for name, meta in listed.items():
        try:
            data = (path / name).read_bytes()
        except OSError as e:
            raise Inconsistent(f"{name}: {e.strerror}") from None
        if not isinstance(meta, dict) or meta.get("sha256") != hashlib.sha256(data).hexdigest():
            raise Inconsistent(f"{name} ({len(data):,} bytes) does not match its checksum in {MANIFEST}")
        files[name] = data
    return files
