"""Writing outputs whole or not at all."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from netsynth.errors import NetsynthError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Works for files and folders, so an interrupted write never leaves a half output that looks complete.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise NetsynthError(f"{path}: cannot write here ({e.strerror})") from None
    os.close(fd)
    os.unlink(tmp)
    tmp = Path(tmp)
    try:
        try:
            yield tmp
        except OSError as e:  # a full disk or a file size limit: the old output, if any, stays as it was
            raise NetsynthError(f"{path}: cannot write ({e.strerror or e})") from None
        if path.is_dir() and tmp.is_dir():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
