"""Unix socket paths done safely: length check, no clobbering, private mode, bounded connect."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import threading

from vutrace.proxy.errors import ProxyError

MAX_PATH_BYTES = 107
"""sun_path holds 108 bytes including the terminating NUL."""
CONNECT_TIMEOUT_S = 5.0
_UMASK_LOCK = threading.Lock()


def check_path(path: str) -> None:
    """Refuse a socket path the kernel cannot bind or connect to."""
    encoded = os.fsencode(path)
    if not encoded:
        raise ProxyError("empty socket path")
    if len(encoded) > MAX_PATH_BYTES:
        raise ProxyError(f"socket path is {len(encoded)} bytes, unix sockets allow at most {MAX_PATH_BYTES}: {path}")


def _is_live(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def clear_path(path: str, force: bool) -> None:
    """Make ``path`` free for bind: nothing there, or a stale socket removed because ``force``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ProxyError(f"{path} exists and is not a socket; refusing to replace it")
    if _is_live(path):
        raise ProxyError(f"{path} is a socket in use (something accepts connections on it)")
    if not force:
        raise ProxyError(f"stale socket {path} exists; remove it or pass --force")
    os.unlink(path)


class ListeningSocket:
    """A bound, listening unix socket that removes its path on close (if the path is still its own)."""

    def __init__(self, path: str, *, mode: int = 0o600, force: bool = False, backlog: int = 16) -> None:
        check_path(path)
        clear_path(path, force)
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            with _UMASK_LOCK:
                old = os.umask(0o777 & ~mode)
                try:
                    self.sock.bind(path)
                finally:
                    os.umask(old)
            os.chmod(path, mode)
            self._ino = os.lstat(path).st_ino
            self.sock.listen(backlog)
        except OSError as error:
            self.sock.close()
            raise ProxyError(f"cannot listen on {path}: {error.strerror or error}") from error

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self) -> socket.socket:
        conn, _ = self.sock.accept()
        conn.setblocking(True)
        return conn

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if os.lstat(self.path).st_ino == self._ino:
                os.unlink(self.path)
        self.sock.close()


def connect(path: str, timeout: float = CONNECT_TIMEOUT_S) -> socket.socket:
    """Connect to a listening unix socket; raises OSError when nobody listens."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    sock.settimeout(None)
    return sock
