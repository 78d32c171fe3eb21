"""The 12-byte vhost-user message header: parse it and tell where a message ends.

Used wherever a byte stream has to be cut into messages (the proxy's framing,
the decoders), so the framing rule lives in one place.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from dissectors.spec import FLAG_NEED_REPLY, FLAG_REPLY, FLAG_VERSION_MASK, HEADER_FORMAT, HEADER_SIZE

_HEADER = struct.Struct(HEADER_FORMAT)


class Header(NamedTuple):
    request: int
    flags: int
    size: int

    @property
    def version(self) -> int:
        return self.flags & FLAG_VERSION_MASK

    @property
    def is_reply(self) -> bool:
        return bool(self.flags & FLAG_REPLY)

    @property
    def need_reply(self) -> bool:
        return bool(self.flags & FLAG_NEED_REPLY)

    @property
    def message_size(self) -> int:
        """Header plus payload: where this message ends in the stream."""
        return HEADER_SIZE + self.size


def parse_header(data: bytes | bytearray | memoryview) -> Header:
    """Parse the first 12 bytes of ``data`` (which must hold at least 12 bytes)."""
    return Header(*_HEADER.unpack_from(data))


def pack_header(request: int, flags: int, size: int) -> bytes:
    return _HEADER.pack(request, flags, size)
