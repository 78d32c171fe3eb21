"""Hypothesis strategies: valid payload fields for every layout, and every (message, direction, layout).

Fields are drawn per layout from the spec table's struct formats; the expected
record is what a decoder must give back for them.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from hypothesis import strategies as st

from dissectors import payloads, spec
from dissectors.spec import Channel, Message, Payload


class Case(NamedTuple):
    """One layout one message can carry in one direction."""

    message: Message
    is_reply: bool
    kind: Payload
    first: bool
    """The usual layout of that direction (chosen when no other fits the size)."""

    @property
    def label(self) -> str:
        direction = "reply" if self.is_reply else "request"
        return f"{self.message.channel}:{self.message.name}:{direction}:{self.kind}"


CASES: list[Case] = [
    Case(message, is_reply, kind, index == 0)
    for table in spec.MESSAGES.values()
    for message in table.values()
    for is_reply in (False, True)
    for index, kind in enumerate(payloads.alternatives(message, is_reply))
]


def _int(fmt: str) -> st.SearchStrategy[int]:
    size = struct.calcsize("<" + fmt)
    if fmt.islower():
        return st.integers(-(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1)
    return st.integers(0, (1 << (8 * size)) - 1)


def _field(fmt: str) -> st.SearchStrategy[object]:
    if fmt.endswith("s"):
        size = int(fmt[:-1])
        return st.binary(min_size=size, max_size=size)
    return _int(fmt)


u32 = _int("I")
u64 = _int("Q")
region = st.tuples(u64, u64, u64, u64)


@st.composite
def fields_for(draw: st.DrawFn, kind: Payload, first: bool = True) -> dict[str, object]:
    """Encoder arguments for a valid payload of ``kind``.

    ``first`` False means another layout of the same direction comes first, so
    sizes it would claim are avoided (an empty memory table is 8 bytes, like a u64).
    """
    if kind in payloads.FIXED:
        layout = payloads.FIXED[kind]
        out = {f.name: draw(_field(f.fmt)) for f in layout.fields if not payloads.is_padding(f)}
        if kind in payloads.U64_SPLITS:
            name, mask = payloads.U64_SPLITS[kind]
            out["u64"] = draw(u64) & ~(mask | payloads.NOFD_MASK)
            out[name] = draw(st.integers(0, mask))
            out["nofd"] = draw(st.booleans())
        if kind is Payload.MEM_REGION and draw(st.booleans()):
            out["xen_flags"] = draw(u32)
            out["domid"] = draw(u32)
        return out
    if kind is Payload.MEM_TABLE:
        regions = draw(st.lists(region, min_size=0 if first else 1, max_size=spec.MAX_FDS))
        out = {"regions": regions}
        if regions and draw(st.booleans()):
            out["region_xen"] = draw(st.lists(st.tuples(u32, u32), min_size=len(regions), max_size=len(regions)))
        return out
    if kind is Payload.CONFIG:
        return {
            "config_offset": draw(u32),
            "config_flags": draw(u32),
            "config_data": draw(st.binary(max_size=300)),
        }
    if kind is Payload.SHMEM_CONFIG:
        sizes = draw(st.lists(st.sampled_from([0, 0, 0, 4096, 1 << 30]) | u64, max_size=spec.SHMEM_MAX_REGIONS))
        return {"shmem_sizes": sizes}
    if kind is Payload.CRYPTO_SESSION:
        return {"op_code": draw(u64), "crypto_setup": draw(st.binary(max_size=200)), "session_id": draw(_int("q"))}
    raise AssertionError(kind)


def expected_record(kind: Payload, fields: dict[str, object]) -> dict[str, object]:
    """The payload part of the record a decoder gives for ``fields_for(kind)``."""
    out = dict(fields)
    if kind in payloads.U64_SPLITS:
        name, _ = payloads.U64_SPLITS[kind]
        out["u64"] = int(fields["u64"]) | int(fields[name]) | (payloads.NOFD_MASK if fields["nofd"] else 0)  # type: ignore[call-overload]
    if kind is Payload.MEM_TABLE:
        out["regions"] = tuple(fields["regions"])  # type: ignore[call-overload]
        out["num_regions"] = len(out["regions"])  # type: ignore[arg-type]
        if "region_xen" in fields:
            out["region_xen"] = tuple(fields["region_xen"])  # type: ignore[call-overload]
    if kind is Payload.CONFIG:
        out["config_size"] = len(fields["config_data"])  # type: ignore[arg-type]
    if kind is Payload.SHMEM_CONFIG:
        sizes = list(fields["shmem_sizes"])  # type: ignore[call-overload]
        out["shmem_sizes"] = tuple(sizes + [0] * (spec.SHMEM_MAX_REGIONS - len(sizes)))
        out["num_regions"] = sum(1 for s in sizes if s)
    return out


channels = st.sampled_from([c.value for c in Channel])
