"""Writing a file atomically: a temporary file beside it, synced, then renamed over it.

Project saves, autosaves, exports and ``render`` all write through
:func:`write_atomically`, so an interrupted write leaves the previous file
byte-identical and never a half-written one. A killed process can leave its
temporary file (``.<name>.<random>.tmp``) behind; :func:`clean_stale_temp_files`
removes those no live writer holds (on POSIX a writer holds a lock on its
temporary file). Plain Python: no Qt, no HDF5.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO

try:  # POSIX: a live writer holds a lock on its temporary file.
    import fcntl
except ImportError:  # pragma: no cover - Windows: an open file cannot be deleted anyway
    fcntl = None  # type: ignore[assignment]

_TEMP_NAME_KEEP = 200  # of the target's name in its temp name, under NAME_MAX
_TEMP_TOKEN_HEX = 12


def write_atomically(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Writes a file through a temporary file beside it, so it is never half-written.

    ``write`` fills the temporary file, which is then flushed, synced to disk and
    renamed over ``path``. On any exception, KeyboardInterrupt included, the
    temporary file is removed, ``path`` is left as it was and the exception
    propagates. The temporary file is named ``.<name>.<random>.tmp``.
    """
    target = Path(path)
    tmp_path, handle = _open_temp(target)
    try:
        try:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
            if fcntl is not None:
                # Renamed while still open, so still locked: another process
                # cleaning stale temporary files never takes it in between.
                os.replace(tmp_path, target)
        finally:
            handle.close()
        if fcntl is None:  # pragma: no cover - Windows cannot rename an open file
            os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        raise
    _fsync_directory(target.parent)


def clean_stale_temp_files(path: str | os.PathLike[str]) -> list[Path]:
    """Removes temporary files that killed saves of ``path`` left behind.

    Only files named like this module's temporary files for that target are
    touched, and (on POSIX) only when no live process holds their lock, so a
    save running in another process is not disturbed.

    Returns:
        The files removed.
    """
    target = Path(os.path.realpath(os.fspath(path)))
    pattern = re.compile(re.escape(_temp_prefix(target)) + f"[0-9a-f]{{{_TEMP_TOKEN_HEX}}}\\.tmp")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        with contextlib.suppress(OSError):
            if not pattern.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            if _held_by_live_writer(entry.path):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _temp_prefix(target: Path) -> str:
    return f".{target.name[:_TEMP_NAME_KEEP]}."


def _open_temp(target: Path) -> tuple[Path, IO[bytes]]:
    """Creates and locks a fresh temporary file beside ``target``.

    Between creating the file and locking it, a cleaner in another process may
    take it for a killed save's and remove it; such a file is noticed once locked
    (the name no longer leads to it) and another one is made.
    """
    for _ in range(100):
        tmp_path, handle = _create_temp(target)
        if _still_there(tmp_path, handle):
            return tmp_path, handle
        handle.close()
    raise FileExistsError(f"cannot keep a temporary file beside {target}")  # pragma: no cover


def _still_there(path: Path, handle: IO[bytes]) -> bool:
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except OSError:
        return False


def _create_temp(target: Path) -> tuple[Path, IO[bytes]]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp_path = target.parent / f"{_temp_prefix(target)}{secrets.token_hex(_TEMP_TOKEN_HEX // 2)}.tmp"
        try:
            # 0o666 less the umask, as for any new file; an existing target's
            # permissions are copied below.
            fd = os.open(tmp_path, flags, 0o666)
        except FileExistsError:
            continue
        break
    else:  # pragma: no cover - 100 collisions of 48 random bits
        raise FileExistsError(f"cannot create a temporary file beside {target}")
    try:
        handle = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        os.unlink(tmp_path)
        raise
    try:
        if fcntl is not None:
            # Blocking: the only other holder can be a cleaner's momentary check.
            with contextlib.suppress(OSError):  # a file system without locks
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp_path, stat.S_IMODE(os.stat(target).st_mode))
    except BaseException:
        handle.close()
        os.unlink(tmp_path)
        raise
    return tmp_path, handle


def _held_by_live_writer(path: str) -> bool:
    if fcntl is None:  # pragma: no cover - Windows refuses to delete an open file
        return False
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False  # no locks on this file system: nothing to tell a live writer by
    finally:
        os.close(fd)  # releases our lock too
    return False


def _fsync_directory(directory: Path) -> None:
    """Makes the rename itself durable; not possible (nor needed) everywhere."""
    if os.name == "nt":  # pragma: no cover
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
