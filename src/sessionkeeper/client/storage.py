"""Where a session lives between calls and between processes.

:class:`SessionStorage` is the small protocol a keeper needs; :class:`MemoryStorage` (the
default, one process) and :class:`FileStorage` (a JSON file several processes share) implement
it. Give each :class:`~sessionkeeper.client.SessionKeeper` its own storage object; share the
keeper, not the storage, inside one process.

The file is the shared truth between processes, so it is written with care: a lock file
serialises refreshes (``filelock``: ``flock`` on POSIX, released by the kernel when a process
dies, so a crashed holder never leaves a stale lock), the session is re-read inside the lock, and
each write goes to a temporary file in the same directory that is fsynced and renamed over the
old one (readers see the old session or the new one, never half of one). Mode 0600: the file
holds credentials. A file that cannot be parsed reads as "no session" and never raises.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import filelock

from sessionkeeper.client.errors import StorageUnreadableError
from sessionkeeper.client.session import Session

log = logging.getLogger("sessionkeeper.client")


class SessionStorage(Protocol):
    """What a keeper needs from a store of sessions.

    - ``load``: the stored session, or ``None`` when there is none (signed out). When something is
      stored but cannot be read (I/O error, corrupt contents), raise ``StorageUnreadableError``:
      the keeper then keeps its in-memory session instead of treating it as a sign-out.
    - ``save``: store a session; ``None`` clears it (sign-out).
    - ``lock``: exclusive across every process sharing the storage, held around
      re-read + refresh + save. Waits at most ``timeout`` seconds and yields whether it got the
      lock; the keeper goes on without it rather than hang.
    - ``changed``: cheaply, whether someone else wrote since this object's last load or save.
      Called at most every ``RefreshPolicy.watch_interval`` seconds on the request path.
    """

    def load(self) -> Session | None: ...

    def save(self, session: Session | None) -> None: ...

    def lock(self, timeout: float) -> contextlib.AbstractContextManager[bool]: ...

    def changed(self) -> bool: ...


class MemoryStorage:
    """The session in this process's memory only: gone when the process exits.

    Its lock is re-entrant in one thread, like ``filelock``'s, so that an event listener that
    signs out from inside a refresh does not wait on itself.
    """

    def __init__(self, session: Session | None = None) -> None:
        self._session = session
        self._lock = threading.RLock()

    def load(self) -> Session | None:
        return self._session

    def save(self, session: Session | None) -> None:
        self._session = session

    @contextlib.contextmanager
    def lock(self, timeout: float) -> Iterator[bool]:
        acquired = self._lock.acquire(timeout=timeout)
        try:
            yield acquired
        finally:
            if acquired:
                self._lock.release()

    def changed(self) -> bool:
        return False


_Signature = tuple[int, int, int, int]


class FileStorage:
    """A session in a JSON file that processes on one machine share safely.

    ``path`` is the session file; the lock is ``path`` + ``.lock`` beside it. The directory is
    created (mode 0700) if missing.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = filelock.FileLock(f"{self.path}.lock", mode=0o600)
        self._seen: _Signature | None = None
        self._seen_lock = threading.Lock()

    def load(self) -> Session | None:
        try:
            with self.path.open("rb") as handle:
                signature = _signature(os.fstat(handle.fileno()))
                data = handle.read(1_048_576)
        except FileNotFoundError:
            self._remember(None)
            return None
        except OSError as exc:
            log.warning(
                "session file unreadable", extra={"path": str(self.path), "error": repr(exc)}
            )
            raise StorageUnreadableError(f"cannot read {self.path}: {exc}") from exc
        self._remember(signature)
        if not data.strip():
            return None
        try:
            return Session.from_stored(json.loads(data))
        except (ValueError, TypeError, RecursionError) as exc:
            # Never the contents in the log: they may hold a token.
            log.warning(
                "session file is not a valid session; ignored", extra={"path": str(self.path)}
            )
            raise StorageUnreadableError(f"{self.path} does not hold a valid session") from exc

    def save(self, session: Session | None) -> None:
        if session is None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self._remember(None)
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = json.dumps(session.to_stored(), separators=(",", ":")).encode()
        # mkstemp creates the file with mode 0600 before anything is written to it.
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_directory(self.path.parent)
        self._remember(_signature(os.stat(self.path)))

    @contextlib.contextmanager
    def lock(self, timeout: float) -> Iterator[bool]:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._lock.acquire(timeout=timeout)
            acquired = True
        except (filelock.Timeout, OSError) as exc:
            # Busy, or the lock file cannot be created (read-only or full disk): go on without
            # it rather than make every refresh fail. The in-process single flight still holds.
            log.warning(
                "session file lock unavailable; going on without it",
                extra={"timeout": timeout, "error": type(exc).__name__},
            )
            acquired = False
        if not acquired:
            yield False
            return
        try:
            yield True
        finally:
            self._lock.release()

    def changed(self) -> bool:
        try:
            current: _Signature | None = _signature(os.stat(self.path))
        except FileNotFoundError:
            current = None
        except OSError:
            return False
        with self._seen_lock:
            return current != self._seen

    def _remember(self, signature: _Signature | None) -> None:
        with self._seen_lock:
            self._seen = signature


def _signature(st: os.stat_result) -> _Signature:
    # The inode changes on every atomic replace, so two writes in the same mtime tick still differ.
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; best effort (not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
