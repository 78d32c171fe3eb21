"""A minimal reader of the postcard 1.x wire format (serde), enough to walk a known schema.

Postcard rules (its wire-format specification): ``u8`` and ``bool`` are one byte; wider unsigned
integers and lengths (``usize``) are LEB128 varints, at most ``ceil(bits / 7)`` bytes, and the last
byte may not carry bits beyond the type's width; signed integers are zigzag-encoded varints; an
``Option`` is a tag byte 0/1 then the value; sequences, strings, byte vectors and maps are a
varint length then the items (strings as UTF-8); an enum is its variant index as a ``u32`` varint
then the variant's fields. Like postcard, over-long varints (``80 00`` for 0) are accepted.

Every read checks the bounds: a string or byte length larger than the input left is an error
before anything is allocated; a sequence count is only ever used to loop over items that each
consume input, so it is bounded by the input too. Errors are ``PostcardError`` with the byte
offset and what was being read.
"""

from __future__ import annotations


class PostcardError(ValueError):
    """The input does not hold the value asked for; ``offset`` is where reading it failed."""

    def __init__(self, message: str, offset: int, what: str = "") -> None:
        super().__init__(f"{what}: {message} at byte {offset}" if what else f"{message} at byte {offset}")
        self.reason = message
        self.offset = offset
        self.what = what


def _varint_limits(bits: int) -> tuple[int, int]:
    """(maximum encoded bytes, largest value the last of them may hold) for an unsigned type."""
    count = -(-bits // 7)
    return count, (1 << (bits - 7 * (count - 1))) - 1


class Reader:
    """Reads postcard values from ``data`` front to back; ``offset`` is the next byte to read."""

    def __init__(self, data: bytes | bytearray | memoryview, offset: int = 0) -> None:
        self.data = bytes(data)
        self.offset = offset

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset

    def at_end(self) -> bool:
        return self.offset >= len(self.data)

    def u8(self, what: str = "") -> int:
        if self.offset >= len(self.data):
            raise PostcardError("input ends", self.offset, what)
        value = self.data[self.offset]
        self.offset += 1
        return value

    def varint(self, bits: int = 64, what: str = "") -> int:
        """An unsigned LEB128 varint of a ``bits``-wide type (16, 32, 64 or 128)."""
        count, last_max = _varint_limits(bits)
        start = self.offset
        value = 0
        for index in range(count):
            if self.offset >= len(self.data):
                raise PostcardError("input ends inside a varint", start, what)
            byte = self.data[self.offset]
            self.offset += 1
            value |= (byte & 0x7F) << (7 * index)
            if not byte & 0x80:
                if index == count - 1 and byte > last_max:
                    raise PostcardError(f"varint overflows u{bits}", start, what)
                return value
        raise PostcardError(f"varint longer than {count} bytes (u{bits})", start, what)

    def u64(self, what: str = "") -> int:
        return self.varint(64, what)

    def signed(self, bits: int = 64, what: str = "") -> int:
        """A zigzag-encoded signed varint (0 → 0, 1 → -1, 2 → 1, ...)."""
        raw = self.varint(bits, what)
        return (raw >> 1) ^ -(raw & 1)

    def i32(self, what: str = "") -> int:
        return self.signed(32, what)

    def boolean(self, what: str = "") -> bool:
        start = self.offset
        byte = self.u8(what)
        if byte > 1:
            raise PostcardError(f"bool byte is 0x{byte:02x}, expected 0 or 1", start, what)
        return bool(byte)

    def option(self, what: str = "") -> bool:
        """The tag of an ``Option``: True when a value follows."""
        start = self.offset
        tag = self.u8(what)
        if tag > 1:
            raise PostcardError(f"option tag is 0x{tag:02x}, expected 0 (None) or 1 (Some)", start, what)
        return bool(tag)

    def variant(self, what: str = "") -> int:
        """An enum's variant index."""
        return self.varint(32, what)

    def count(self, what: str = "") -> int:
        """The item count of a sequence or map. Every item takes at least one byte, so a caller reading the
        items one by one stops at the end of the input after at most ``remaining`` of them, keeping those
        it read, however large the count; nothing is allocated from it."""
        return self.varint(64, what)

    def length(self, what: str = "") -> int:
        """The byte length of a string or byte vector; a length beyond the input left is an error."""
        start = self.offset
        count = self.varint(64, what)
        if count > self.remaining:
            raise PostcardError(f"length {count} exceeds the {self.remaining} bytes left", start, what)
        return count

    def byte_vec(self, what: str = "") -> bytes:
        count = self.length(what)
        value = self.data[self.offset : self.offset + count]
        self.offset += count
        return value

    def string(self, what: str = "") -> str:
        start = self.offset
        raw = self.byte_vec(what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise PostcardError(f"string is not UTF-8 ({error.reason})", start, what) from None
