"""Flat records: one vhost-user message's bytes turned into a dict of named fields.

This is the bulk decode path (the capture loader calls ``decode`` once per
message, so it avoids scapy and does one ``struct`` unpack per payload). It
agrees field for field with the scapy layers in ``dissectors.layers``.

``decode`` never raises. Bad input gives a one-line ``error`` or ``warning`` in
the record; the caller keeps the raw bytes, so nothing is lost.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from dissectors import payloads
from dissectors.payloads import (
    CONFIG_HEADER,
    CONFIG_HEADER_SIZE,
    CRYPTO_OP_CODE,
    CRYPTO_SESSION_ID,
    FIXED,
    MEM_REGION_XEN,
    MEM_TABLE_HEADER,
    MEM_TABLE_HEADER_SIZE,
    NOFD_MASK,
    REGION,
    REGION_XEN,
    SHMEM_CONFIG,
    U64_SPLITS,
    Choice,
    FixedLayout,
    PackedVringBase,
    packed_vring_base,
    split_vring_base,
)
from dissectors.spec import (
    FLAG_KNOWN_MASK,
    FLAG_NEED_REPLY,
    FLAG_REPLY,
    FLAG_VERSION_MASK,
    HEADER_FORMAT,
    HEADER_SIZE,
    MAX_FDS,
    MEM_REGION_XEN_SIZE,
    MESSAGES,
    SHMEM_MAX_REGIONS,
    VERSION,
    FdRule,
    Message,
    Payload,
    lookup,
)

__all__ = ["BASE_KEYS", "PackedVringBase", "decode", "packed_vring_base", "split_vring_base"]

BASE_KEYS: tuple[str, ...] = (
    "request_id",
    "request",
    "is_reply",
    "flags",
    "need_reply",
    "version",
    "size",
    "payload_len",
    "error",
    "warning",
)
"""Keys present in every record; payload fields follow them."""

_HEADER = struct.Struct(HEADER_FORMAT)
_U32 = struct.Struct("<I")
_FAST_FLAGS = (VERSION, VERSION | FLAG_REPLY, VERSION | FLAG_NEED_REPLY, VERSION | FLAG_REPLY | FLAG_NEED_REPLY)

Record = dict[str, object]
Problems = tuple[str | None, str | None]
"""(error, warning) found while decoding a payload."""
FixedDecoder = Callable[[bytes, Record], None]
"""Adds a fixed payload's fields to the record; the payload starts at offset 12 of the message bytes."""
VariableDecoder = Callable[[memoryview, Record, bool], Problems]
"""Adds a variable payload's fields (given the payload bytes and is_reply) and reports problems."""


def _fixed_decoder(layout: FixedLayout) -> FixedDecoder:
    names = layout.names
    unpack = layout.struct.unpack_from
    split = U64_SPLITS.get(layout.kind)
    if split is not None:
        split_name, mask = split

        def decode_split(data: bytes, rec: Record) -> None:
            values = unpack(data, HEADER_SIZE)
            rec.update(zip(names, values, strict=True))
            rec[split_name] = values[0] & mask
            rec["nofd"] = bool(values[0] & NOFD_MASK)

        return decode_split
    if len(names) == 1:
        name = names[0]

        def decode_one(data: bytes, rec: Record) -> None:
            rec[name] = unpack(data, HEADER_SIZE)[0]

        return decode_one

    def decode_fields(data: bytes, rec: Record) -> None:
        rec.update(zip(names, unpack(data, HEADER_SIZE), strict=True))

    return decode_fields


_FIXED_DECODERS: dict[Payload, FixedDecoder] = {kind: _fixed_decoder(layout) for kind, layout in FIXED.items()}
_decode_xen_region = _fixed_decoder(MEM_REGION_XEN)


def _regions(body: memoryview, region_size: int, count: int, rec: Record) -> None:
    """Memory regions as 4-tuples; XEN_MMAP's (xen_flags, domid) go to ``region_xen``."""
    if region_size == MEM_REGION_XEN_SIZE:
        full = tuple(REGION_XEN.iter_unpack(body[: count * region_size]))
        rec["regions"] = tuple(r[:4] for r in full)
        rec["region_xen"] = tuple(r[4:] for r in full)
    else:
        rec["regions"] = tuple(REGION.iter_unpack(body[: count * region_size]))


def _mem_table(payload: memoryview, rec: Record, is_reply: bool) -> Problems:
    if not payload:
        rec["num_regions"] = 0
        rec["regions"] = ()
        return None, "empty memory table (postcopy acknowledgement)"
    (num,) = MEM_TABLE_HEADER.unpack_from(payload)
    rec["num_regions"] = num
    body = payload[MEM_TABLE_HEADER_SIZE:]
    region_size = payloads.mem_table_region_size(len(payload), num)
    errors = []
    if region_size is None:
        errors.append(
            f"payload size {len(payload)} does not match num_regions {num} (expected 8+32*{num} = {8 + 32 * num})"
        )
        region_size = REGION.size
    if num > MAX_FDS:
        errors.append(f"num_regions {num} exceeds {MAX_FDS}")
    _regions(body, region_size, min(num, len(body) // region_size), rec)
    return "; ".join(errors) or None, None


def _config(payload: memoryview, rec: Record, is_reply: bool) -> Problems:
    if not payload:
        return None, "back-end reported an error (0-byte GET_CONFIG reply)"
    offset, size, flags = CONFIG_HEADER.unpack_from(payload)
    rec["config_offset"] = offset
    rec["config_size"] = size
    rec["config_flags"] = flags
    data = payload[CONFIG_HEADER_SIZE:]
    rec["config_data"] = bytes(data[:size])
    if len(data) != size:
        return f"config size {size}, {len(data)} data bytes present", None
    return None, None


def _shmem_config(payload: memoryview, rec: Record, is_reply: bool) -> Problems:
    num, *sizes = SHMEM_CONFIG.unpack_from(payload)
    rec["num_regions"] = num
    rec["shmem_sizes"] = tuple(sizes)
    if num > SHMEM_MAX_REGIONS:
        return f"num_regions {num} exceeds {SHMEM_MAX_REGIONS}", None
    used = sum(1 for s in sizes if s)
    if used != num:
        return None, f"num_regions {num} but {used} non-zero region sizes"
    return None, None


def _crypto_session(payload: memoryview, rec: Record, is_reply: bool) -> Problems:
    rec["op_code"] = CRYPTO_OP_CODE.unpack_from(payload)[0]
    rec["crypto_setup"] = bytes(payload[CRYPTO_OP_CODE.size : len(payload) - CRYPTO_SESSION_ID.size])
    rec["session_id"] = CRYPTO_SESSION_ID.unpack_from(payload, len(payload) - CRYPTO_SESSION_ID.size)[0]
    return None, None


_VARIABLE_DECODERS: dict[Payload, VariableDecoder] = {
    Payload.MEM_TABLE: _mem_table,
    Payload.CONFIG: _config,
    Payload.SHMEM_CONFIG: _shmem_config,
    Payload.CRYPTO_SESSION: _crypto_session,
}
"""Decoders of the variable layouts; they get the payload once it has the bytes their layout needs, or 0 bytes
where the size rule allows an empty payload (postcopy memory-table ack, GET_CONFIG error reply)."""


_EXPECTED_FDS: dict[FdRule, tuple[int, ...]] = {FdRule.NONE: (0,), FdRule.ONE: (1,), FdRule.OPTIONAL: (0, 1)}


def _fast_table(message: Message, is_reply: bool) -> dict[int, tuple[FixedDecoder, tuple[int, ...] | None]]:
    """For sizes where ``choose`` picks a fixed layout without error: its decoder and the FD counts allowed.

    The allowed counts are None where they depend on the decoded no-FD bit.
    """
    table: dict[int, tuple[FixedDecoder, tuple[int, ...] | None]] = {}
    rule = message.reply_fds if is_reply else message.request_fds
    for kind in payloads.alternatives(message, is_reply):
        if kind in FIXED:
            choice = payloads.choose(message, is_reply, FIXED[kind].size)
            if choice.error is None and not choice.xen and choice.kind in FIXED:
                kind_rule = rule if is_reply or choice.kind is message.request else FdRule.NONE
                allowed = None if kind_rule is FdRule.UNLESS_NOFD else _EXPECTED_FDS.get(kind_rule, ())
                table[FIXED[kind].size] = (_FIXED_DECODERS[choice.kind], allowed)
    return table


_FastEntry = tuple[
    str, dict[int, tuple[FixedDecoder, tuple[int, ...] | None]], dict[int, tuple[FixedDecoder, tuple[int, ...] | None]]
]
_NO_FAST: dict[int, _FastEntry] = {}
_FAST: dict[str, dict[int, _FastEntry]] = {
    channel.value: {mid: (m.name, _fast_table(m, False), _fast_table(m, True)) for mid, m in table.items()}
    for channel, table in MESSAGES.items()
}
"""Per channel and request id: name, and the request and reply decoders by payload size."""


def _decode_payload(data: bytes, rec: Record, message: Message, is_reply: bool, size: int) -> tuple[Payload, Problems]:
    """Add the payload fields; returns the layout used and the problems found."""
    choice: Choice = payloads.choose(message, is_reply, size)
    kind = choice.kind
    error = choice.error
    warning = None
    if kind in FIXED:
        if choice.xen:
            _decode_xen_region(data, rec)
        elif size >= FIXED[kind].size:
            _FIXED_DECODERS[kind](data, rec)
    elif payloads.decodable(choice, size) or (size == 0 and error is None):
        err, warning = _VARIABLE_DECODERS[kind](memoryview(data)[HEADER_SIZE : HEADER_SIZE + size], rec, is_reply)
        error = _join(error, err)
    return kind, (error, warning)


def _fd_warning(message: Message, is_reply: bool, kind: Payload, rec: Record, nfds: int) -> str | None:
    """A warning if the FD count breaks the message's FD rule (an alternative request layout carries none)."""
    rule = message.reply_fds if is_reply else message.request_fds
    if not is_reply and kind is not message.request:
        rule = FdRule.NONE
    if rule is FdRule.PER_REGION:
        expected: tuple[int, ...] = (rec.get("num_regions", 0),)  # type: ignore[assignment]
    elif rule is FdRule.UNLESS_NOFD:
        expected = (0,) if rec.get("nofd", True) else (1,)
    else:
        expected = _EXPECTED_FDS[rule]
    if nfds in expected:
        return None
    return f"{nfds} FDs attached, expected {' or '.join(str(n) for n in expected)}"


def _join(first: str | None, second: str | None) -> str | None:
    if first and second:
        return f"{first}; {second}"
    return first or second


def _short(data: bytes | bytearray | memoryview, n: int) -> Record:
    request_id = _U32.unpack_from(data)[0] if n >= 4 else None
    flags = _U32.unpack_from(data, 4)[0] if n >= 8 else 0
    return {
        "request_id": request_id,
        "request": "TRUNCATED",
        "is_reply": bool(flags & FLAG_REPLY),
        "flags": flags,
        "need_reply": bool(flags & FLAG_NEED_REPLY),
        "version": flags & FLAG_VERSION_MASK,
        "size": 0,
        "payload_len": 0,
        "error": f"truncated header: {n} of {HEADER_SIZE} bytes",
        "warning": None,
    }


def decode(data: bytes | bytearray | memoryview, channel: str = "main", nfds: int | None = None) -> Record:
    """Decode one message (header + payload) into a flat record. Never raises.

    ``channel`` is "main" (front-end requests) or "backend" (the back-end request
    channel). ``nfds`` is the number of FDs that came with the message; when given,
    an FD count the message's FD rule does not allow gives a warning. None means
    unknown (no check).
    """
    try:
        return _decode(data, channel, nfds)
    except Exception as exc:  # the contract is "never raises": report a decoder bug as an error record
        rec = _short(data, min(len(data), 8)) if isinstance(data, bytes | bytearray | memoryview) else _short(b"", 0)
        if rec["request_id"] is not None:
            rec["request"] = f"UNKNOWN_{rec['request_id']}"
        rec["error"] = f"internal decoder error: {exc!r}"
        return rec


def _decode(data: bytes | bytearray | memoryview, channel: str, nfds: int | None) -> Record:
    n = len(data)
    if n < HEADER_SIZE:
        return _short(data, n)
    request, flags, size = _HEADER.unpack_from(data)
    present = n - HEADER_SIZE
    is_reply = flags & FLAG_REPLY != 0
    entry = _FAST.get(channel, _NO_FAST).get(request)
    rec: Record = {
        "request_id": request,
        "request": entry[0] if entry is not None else f"UNKNOWN_{request}",
        "is_reply": is_reply,
        "flags": flags,
        "need_reply": flags & FLAG_NEED_REPLY != 0,
        "version": flags & FLAG_VERSION_MASK,
        "size": size,
        "payload_len": size if present >= size else present,
        "error": None,
        "warning": None,
    }
    if entry is not None and present == size and flags in _FAST_FLAGS:
        fast = (entry[2] if is_reply else entry[1]).get(size)
        if fast is not None:
            decoder, allowed = fast
            decoder(data, rec)
            if nfds is None or nfds in (allowed if allowed is not None else ((0,) if rec["nofd"] else (1,))):
                return rec
    return _decode_slow(bytes(data), channel, nfds, rec, request, flags, size)


def _decode_slow(
    data: bytes, channel: str, nfds: int | None, rec: Record, request: int, flags: int, size: int
) -> Record:
    """Every check and every layout: for anything the fast path does not take."""
    present = len(data) - HEADER_SIZE
    is_reply = flags & FLAG_REPLY != 0
    error: str | None = None
    warning: str | None = None
    if flags & FLAG_VERSION_MASK != VERSION:
        error = f"version {flags & FLAG_VERSION_MASK}, expected {VERSION}"
    if flags & ~FLAG_KNOWN_MASK:
        warning = f"undefined flag bits {flags & ~FLAG_KNOWN_MASK:#x}"
    try:
        message = lookup(channel, request)
    except ValueError:
        message = None
        error = _join(error, f"unknown channel {channel!r}")
    else:
        if message is None:
            error = _join(error, f"unknown request id {request} on the {channel} channel")
    if present < size:
        error = _join(error, f"truncated payload: size {size}, {present} bytes present")
    elif present > size:
        warning = _join(warning, f"{present - size} trailing bytes beyond size {size}")
    if message is not None and present >= size:
        kind, (payload_error, payload_warning) = _decode_payload(data, rec, message, is_reply, size)
        error = _join(error, payload_error)
        warning = _join(warning, payload_warning)
        if nfds is not None:
            warning = _join(warning, _fd_warning(message, is_reply, kind, rec, nfds))
    rec["error"] = error
    rec["warning"] = warning
    return rec
