"""One writer at a time per output folder.

filelock takes an OS lock (flock) on `<folder>/.netsynth.lock`: the kernel releases it when its holder dies, so a
lock left by a killed process is recovered by the next run with nothing to clean up. The holder's PID and
command go to `.netsynth.owner` beside it (not into the lock file, which every contender opens), so that a
refused run can say who holds the folder.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from filelock import FileLock, Timeout

from netsynth.errors import NetsynthError

LOCK_FILE, OWNER_FILE = ".netsynth.lock", ".netsynth.owner"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike):
    """Hold `folder` for this process while the block runs; another holder is a one-line error naming it."""
    folder = Path(folder)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(folder / LOCK_FILE))
        lock.acquire(timeout=0)
    except Timeout:
        raise NetsynthError(f"{folder} is in use by another netsynth process ({_owner(folder)}); wait for it to "
                            "finish or choose another folder") from None
    except OSError as e:
        raise NetsynthError(f"{folder}: cannot write here ({e.strerror})") from None
    try:
        (folder / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "command": " ".join(sys.argv)}))
        yield folder
    finally:
        (folder / OWNER_FILE).unlink(missing_ok=True)
        lock.release()
        if created and {p.name for p in folder.iterdir()} <= {LOCK_FILE}:  # a run that wrote nothing leaves nothing
            (folder / LOCK_FILE).unlink(missing_ok=True)
            folder.rmdir()


def _owner(folder: Path) -> str:
    try:
        owner = json.loads((folder / OWNER_FILE).read_text())
        return f"PID {owner['pid']}: {owner['command']}"
    except (OSError, ValueError, KeyError):
        return "PID unknown"
