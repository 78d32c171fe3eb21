"""Pipes for the device-state relay: make them as large as allowed, and tee(2) between two of them.

``tee`` duplicates what sits in one pipe into another without consuming it or copying the bytes
(the two pipes share the pages), so the state relay can pass a chunk on to the reader and then
read the same chunk once for the capture. Python has no ``os.tee``; it is called through ctypes
(which releases the GIL for the call). Where libc has no ``tee``, :data:`TEE_AVAILABLE` is False
and the relay copies with read and write instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import stat

DEFAULT_PIPE_SIZE = 1 << 20
SPLICE_F_NONBLOCK = 0x02
"""Do not block on the pipes (EAGAIN when the source is empty or the destination full)."""


@functools.cache
def pipe_max_size() -> int:
    """/proc/sys/fs/pipe-max-size, read once per process."""
    try:
        with open("/proc/sys/fs/pipe-max-size") as f:
            return int(f.read())
    except (OSError, ValueError):
        return DEFAULT_PIPE_SIZE


def enlarge_pipe(fd: int) -> int:
    """Raise a pipe's capacity as far as the system allows; returns the capacity in force (0 if unknown)."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, pipe_max_size())
    try:
        return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
    except OSError:
        return 0


def make_pipe() -> tuple[int, int]:
    """A close-on-exec pipe with the largest capacity allowed."""
    r, w = os.pipe2(os.O_CLOEXEC)
    enlarge_pipe(w)
    return r, w


def is_pipe(fd: int) -> bool:
    """True when ``fd`` is a pipe end (tee and F_SETPIPE_SZ apply)."""
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False


def _load_tee():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.tee
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint)
    function.restype = ctypes.c_ssize_t
    return function


_TEE = _load_tee()
TEE_AVAILABLE = _TEE is not None


def tee(src: int, dst: int, length: int) -> int:
    """Duplicate up to ``length`` bytes from pipe ``src`` into pipe ``dst`` without consuming them.

    Returns the bytes duplicated, 0 at end-of-file (``src`` empty and its writers gone); raises
    BlockingIOError when ``src`` is empty or ``dst`` full, OSError (EPIPE...) otherwise.
    """
    assert _TEE is not None
    while True:
        n = _TEE(src, dst, length, SPLICE_F_NONBLOCK)
        if n >= 0:
            return n
        code = ctypes.get_errno()
        if code != errno.EINTR:
            raise OSError(code, os.strerror(code))
