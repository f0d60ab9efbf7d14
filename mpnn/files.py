"""Files that several processes may want to create at the same moment (a sweep, runs started together).

One process creates such a file under a lock while the others wait and then reuse it; the file is
written under a temporary name of its own and renamed into place, so a reader sees all of it or
nothing and two writers never share a temporary file.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from filelock import FileLock, Timeout


def check_writable(folder: Path, setting: str) -> None:
    """Create `folder` if needed and make sure files can be created in it: a read-only folder is
    reported before minutes of work whose result could not be saved there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        raise PermissionError(
            f"cannot write to {folder} ({error.strerror or error}); choose a writable {setting}=DIR"
        ) from None


@contextmanager
def lock_for(path: Path) -> Iterator[None]:
    """Hold `<path>.lock`: one process at a time creates `path`. Says so when it has to wait for another."""
    lock = FileLock(path.with_name(f"{path.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"waiting for another process to create {path}", file=sys.stderr, flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write `path` through `write(file)` on a uniquely named temporary file, renamed over `path` once complete."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "xb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
