"""Crash-safe file writing."""
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path, suffix: str = ""):
    """A temporary file name next to ``path`` to write by name (for a library that takes file names); on success the
    file is fsynced and replaces ``path`` atomically.

    The temporary file is named ``.<basename>.tmp<random><suffix>`` in the target's directory (created if missing)
    and gets the usual umask-based permissions. If the body raises, the temporary file is removed and an existing
    ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@contextmanager
def atomic_write(path, mode: str = "wb"):
    """Open a temporary file next to ``path`` for writing; on success it replaces ``path`` atomically
    (``atomic_path``: named ``.<basename>.tmp<random>``, fsynced, umask-based permissions; removed if the body
    raises, leaving an existing ``path`` untouched). Text modes use UTF-8."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
