"""Device-state payload dissectors: what a back-end put into its SET_DEVICE_STATE_FD stream.

The stream has no framing of its own; its format belongs to the back-end. ``decode_state`` takes
the bytes of one whole stream and tries the known formats, most specific first. Each format is a
module with ``NAME``, ``TITLE``, ``detect(stream) -> bool`` and ``decode(stream) -> StateDecode``.
Like the rest of ``dissectors``, nothing here does I/O, and nothing raises on bad input.
"""

from __future__ import annotations

from dissectors.state import sim, virtiofsd
from dissectors.state.result import StateDecode, preview

FORMATS = (sim, virtiofsd)
"""Tried in this order: the simulated back-end's magic first, then virtiofsd's complete postcard parse."""

UNKNOWN = "unknown"
EMPTY = "empty"

__all__ = ["EMPTY", "FORMATS", "UNKNOWN", "StateDecode", "decode_state"]


def decode_state(data: bytes) -> StateDecode:
    """The first format that recognises the stream; otherwise ``unknown`` with a hex preview and, in
    ``attempts``, the partial decodes of the formats that read at least one item before failing."""
    data = bytes(data)
    if not data:
        return StateDecode(EMPTY, "empty stream", 0, False, "no bytes")
    attempts = []
    for module in FORMATS:
        result = module.decode(data)
        if result.recognised:
            return result
        if any(row["kind"] != "error" for row in result.rows):
            attempts.append(result)
    return StateDecode(
        UNKNOWN,
        "unknown format",
        len(data),
        False,
        f"{len(data)} bytes in no known format",
        preview=preview(data),
        attempts=attempts,
    )
