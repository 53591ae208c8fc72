"""Atomic file writes: a crash or a concurrent run never leaves a half-written file behind.

Writes go to a temp file in the target's directory (``os.replace`` is atomic only within one
filesystem), are fsynced, then replace the target; the directory is fsynced after the rename.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

__all__ = ["atomic_write"]


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Opens a temp file next to ``path`` that replaces ``path`` only once the block finishes without an error.

    The temp file lives in the same directory because ``os.replace`` is atomic only within one filesystem.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; run outputs should be readable like any other file
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            # Without the fsync a power cut after the rename can leave a renamed but empty file.
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable on POSIX; directories cannot be opened this way on Windows.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
