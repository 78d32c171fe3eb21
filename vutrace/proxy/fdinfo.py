"""Describe a file descriptor that travelled with a message: what it is, how big, which inode.

The proxy calls :func:`describe` on every FD it receives, before forwarding and closing its
copy, so a capture tells which memfd, eventfd, pipe or socket each message carried.
"""

from __future__ import annotations

import fcntl
import os
import stat

from vutrace.capture.model import FdAction, FdInfo, FdKind

_MEMFD_PREFIX = "/memfd:"
_DELETED_SUFFIX = " (deleted)"
_ANON_KINDS = {
    "anon_inode:[eventfd]": FdKind.EVENTFD,
    "anon_inode:[userfaultfd]": FdKind.USERFAULTFD,
    "anon_inode:dmabuf": FdKind.DMABUF,
}


def fd_target(fd: int) -> str:
    """What /proc/self/fd/N points to, or "" if it cannot be read."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def memfd_name(target: str) -> str:
    """The name a memfd was created with, from its /proc link (``/memfd:NAME (deleted)``)."""
    if not target.startswith(_MEMFD_PREFIX):
        return ""
    name = target[len(_MEMFD_PREFIX) :]
    return name.removesuffix(_DELETED_SUFFIX)


def kind_of(mode: int, target: str) -> FdKind:
    """Classify an FD from its fstat mode and its /proc link."""
    if target.startswith(_MEMFD_PREFIX):
        return FdKind.MEMFD
    if target in _ANON_KINDS:
        return _ANON_KINDS[target]
    if target.startswith("/dmabuf:"):
        return FdKind.DMABUF
    if stat.S_ISFIFO(mode):
        return FdKind.PIPE
    if stat.S_ISSOCK(mode):
        return FdKind.SOCKET
    if stat.S_ISREG(mode):
        return FdKind.FILE
    return FdKind.OTHER


def seals_of(fd: int) -> int | None:
    """F_GET_SEALS of a memfd (None where the FD does not support seals)."""
    try:
        return fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except OSError:
        return None


def describe(fd: int, action: FdAction = FdAction.PASSED) -> FdInfo:
    """Everything the proxy records about one received FD; never raises."""
    try:
        st = os.fstat(fd)
    except OSError:
        return FdInfo(kind=FdKind.UNKNOWN, action=action, fd=fd)
    target = fd_target(fd)
    kind = kind_of(st.st_mode, target)
    size = st.st_size if kind in (FdKind.MEMFD, FdKind.FILE, FdKind.DMABUF) else None
    return FdInfo(
        kind=kind,
        action=action,
        fd=fd,
        size=size,
        dev=st.st_dev,
        ino=st.st_ino,
        target=target,
        memfd_name=memfd_name(target),
        seals=seals_of(fd) if kind is FdKind.MEMFD else None,
    )
