"""Build vhost-user messages from flat-record field names.

``encode("SET_VRING_KICK", vring=0, nofd=False)`` gives the 20 wire bytes of that
message; ``decode(encode(...))`` gives the fields back. Used by the simulated
peers and the tests. ``flags``, ``size`` and ``body`` override what would be
computed, to build malformed messages on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dissectors.header import pack_header
from dissectors.payloads import (
    CONFIG_HEADER,
    CRYPTO_OP_CODE,
    CRYPTO_SESSION_ID,
    FIXED,
    MEM_REGION_XEN,
    MEM_TABLE_HEADER,
    NOFD_MASK,
    REGION,
    REGION_XEN,
    SHMEM_CONFIG,
    U64_SPLITS,
    XEN_FIELDS,
    FixedLayout,
    alternatives,
)
from dissectors.spec import (
    FLAG_NEED_REPLY,
    FLAG_REPLY,
    SHMEM_MAX_REGIONS,
    VERSION,
    Channel,
    Message,
    Payload,
    by_name,
    lookup,
)

__all__ = ["encode", "field_names"]

_VARIABLE_FIELDS: dict[Payload, tuple[str, ...]] = {
    Payload.MEM_TABLE: ("num_regions", "regions", "region_xen"),
    Payload.CONFIG: ("config_offset", "config_size", "config_flags", "config_data"),
    Payload.SHMEM_CONFIG: ("num_regions", "shmem_sizes"),
    Payload.CRYPTO_SESSION: ("op_code", "crypto_setup", "session_id"),
}
_XEN_NAMES = tuple(f.name for f in XEN_FIELDS)


def field_names(kind: Payload) -> tuple[str, ...]:
    """The flat-record fields a payload layout can carry (derived fields included)."""
    if kind in _VARIABLE_FIELDS:
        return _VARIABLE_FIELDS[kind]
    names = FIXED[kind].names
    if kind in U64_SPLITS:
        names += (U64_SPLITS[kind][0], "nofd")
    if kind is Payload.MEM_REGION:
        names += _XEN_NAMES
    return names


def _resolve(message: str | int, channel: str) -> tuple[int, Message | None]:
    if isinstance(message, int):
        return message, lookup(channel, message)
    try:
        found = by_name(channel, message)
    except KeyError:
        raise ValueError(f"no message {message!r} on the {Channel(channel)} channel") from None
    return found.id, found


def _pick(message: Message, reply: bool, given: Iterable[str]) -> Payload:
    """The first layout of the direction that has every given field."""
    options = alternatives(message, reply)
    wanted = set(given)
    for kind in options:
        if wanted <= set(field_names(kind)):
            return kind
    direction = "reply" if reply else "request"
    known = sorted({name for kind in options for name in field_names(kind)})
    raise TypeError(f"{message.name} {direction} has no field(s) {sorted(wanted)}; fields: {known}")


def _fixed(layout: FixedLayout, fields: Mapping[str, object]) -> bytes:
    values: list[object] = []
    for field in layout.fields:
        if field.name in layout.names:
            values.append(fields.get(field.name, b"" if field.fmt.endswith("s") else 0))
    split = U64_SPLITS.get(layout.kind)
    if split is not None:
        name, mask = split
        part = int(fields.get(name, 0))  # type: ignore[call-overload]
        if part & ~mask:
            raise ValueError(f"{name} {part} does not fit in {mask.bit_length()} bits")
        values[0] = int(values[0]) | part | (NOFD_MASK if fields.get("nofd") else 0)  # type: ignore[call-overload]
    return layout.struct.pack(*values)


def _mem_table(fields: Mapping[str, object]) -> bytes:
    regions = [tuple(r) for r in fields.get("regions", ())]  # type: ignore[attr-defined]
    xen = [tuple(x) for x in fields.get("region_xen", ())]  # type: ignore[attr-defined]
    if xen and len(xen) != len(regions):
        raise ValueError(f"region_xen has {len(xen)} entries for {len(regions)} regions")
    count = fields.get("num_regions", len(regions))
    out = [MEM_TABLE_HEADER.pack(count)]
    if xen:
        out += [REGION_XEN.pack(*r, *x) for r, x in zip(regions, xen, strict=True)]
    else:
        out += [REGION.pack(*r) for r in regions]
    return b"".join(out)


def _config(fields: Mapping[str, object]) -> bytes:
    data = bytes(fields.get("config_data", b""))  # type: ignore[call-overload]
    header = CONFIG_HEADER.pack(
        fields.get("config_offset", 0), fields.get("config_size", len(data)), fields.get("config_flags", 0)
    )
    return header + data


def _shmem_config(fields: Mapping[str, object]) -> bytes:
    sizes = list(fields.get("shmem_sizes", ()))  # type: ignore[call-overload]
    if len(sizes) > SHMEM_MAX_REGIONS:
        raise ValueError(f"{len(sizes)} shmem sizes, at most {SHMEM_MAX_REGIONS}")
    sizes += [0] * (SHMEM_MAX_REGIONS - len(sizes))
    return SHMEM_CONFIG.pack(fields.get("num_regions", sum(1 for s in sizes if s)), *sizes)


def _crypto_session(fields: Mapping[str, object]) -> bytes:
    return (
        CRYPTO_OP_CODE.pack(fields.get("op_code", 0))
        + bytes(fields.get("crypto_setup", b""))  # type: ignore[call-overload]
        + CRYPTO_SESSION_ID.pack(fields.get("session_id", 0))
    )


_VARIABLE_ENCODERS = {
    Payload.MEM_TABLE: _mem_table,
    Payload.CONFIG: _config,
    Payload.SHMEM_CONFIG: _shmem_config,
    Payload.CRYPTO_SESSION: _crypto_session,
}


def encode_payload(kind: Payload, fields: Mapping[str, object]) -> bytes:
    """The payload bytes of one layout; missing fields are 0 (empty for bytes)."""
    if kind in _VARIABLE_ENCODERS:
        return _VARIABLE_ENCODERS[kind](fields)
    if kind is Payload.MEM_REGION and any(name in fields for name in _XEN_NAMES):
        return _fixed(MEM_REGION_XEN, fields)
    return _fixed(FIXED[kind], fields)


def encode(
    message: str | int,
    channel: str = "main",
    *,
    reply: bool = False,
    need_reply: bool = False,
    flags: int | None = None,
    size: int | None = None,
    body: bytes | None = None,
    **fields: object,
) -> bytes:
    """One whole message (header + payload).

    ``message`` is a name (with or without the VHOST_USER_ / VHOST_USER_BACKEND_
    prefix) or a request id (an id the spec does not define gets an empty payload
    unless ``body`` is given). Fields use the flat-record names; where a direction
    has several layouts (e.g. the SET_LOG_BASE reply: ``result`` or ``log_size`` /
    ``log_offset``) the first one that has all given fields is used. ``flags`` and
    ``size`` replace the computed header values, ``body`` the computed payload.
    Raises ValueError/TypeError for unknown names or fields.
    """
    request_id, found = _resolve(message, channel)
    if found is not None:
        payload = encode_payload(_pick(found, reply, fields), fields)
    elif fields:
        raise TypeError(f"request id {request_id} is not defined on the {channel} channel: no fields to encode")
    else:
        payload = b""
    if body is not None:
        payload = bytes(body)
    if flags is None:
        flags = VERSION | (FLAG_REPLY if reply else 0) | (FLAG_NEED_REPLY if need_reply else 0)
    return pack_header(request_id, flags, len(payload) if size is None else size) + payload
