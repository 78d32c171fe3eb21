"""Read a scapy packet back as flat-record fields, so the two decode paths can be compared."""

from __future__ import annotations

from scapy.packet import Packet

from dissectors.layers import MemoryRegionXen, VhostUserHeader, VhostUserPayload
from dissectors.payloads import REGION_NAMES, XEN_FIELDS

_XEN_NAMES = tuple(f.name for f in XEN_FIELDS)


def _plain(value: object) -> object:
    if isinstance(value, bool | bytes | str):
        return value
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return int(value)  # type: ignore[call-overload]


def scapy_payload_fields(body: Packet) -> dict[str, object]:
    """The payload fields of a scapy payload layer under their flat-record names (padding left out)."""
    out: dict[str, object] = {}
    if not isinstance(body, VhostUserPayload):
        return out
    for field in body.fields_desc:
        name = field.name
        if name.endswith("padding") or name.endswith("reserved") or name == "setup_len":
            continue
        value = body.getfieldval(name)
        if name == "regions":
            out["regions"] = tuple(tuple(int(r.getfieldval(n)) for n in REGION_NAMES) for r in value)
            if any(isinstance(r, MemoryRegionXen) for r in value):
                out["region_xen"] = tuple(tuple(int(r.getfieldval(n)) for n in _XEN_NAMES) for r in value)
        else:
            out[name] = _plain(value)
    if hasattr(type(body), "u64"):
        out["u64"] = body.u64  # type: ignore[attr-defined]
    return out


def scapy_record(pkt: Packet) -> dict[str, object]:
    """Header and payload fields of a dissected message, named like a flat record."""
    assert isinstance(pkt, VhostUserHeader), pkt
    out: dict[str, object] = {
        "request_id": pkt.request,
        "is_reply": pkt.is_reply,
        "flags": int(pkt.flags),
        "need_reply": pkt.need_reply,
        "version": pkt.version,
        "size": pkt.size,
    }
    out.update(scapy_payload_fields(pkt.payload))
    return out
