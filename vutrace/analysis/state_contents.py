"""What each device-state transfer of a capture carried: its chunks joined in order and decoded.

The transfers are the ones ``throughput.streams`` finds (SET_DEVICE_STATE_FD, the state chunks and
the ``state_open``/``state_close`` events of one stream number). The chunk bytes (the ``raw`` column
of the state rows) are joined by offset and handed to ``dissectors.state.decode_state``, which
picks the format. Bytes the capture does not hold are reported, not guessed: chunks recorded as
length and SHA-256 only (``state_payload="hash"``), a gap between chunks, or fewer bytes than the
proxy counted at the close of the stream (a cut-off capture). What is contiguous from offset 0 is
decoded anyway, so a partial state still shows what it holds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dissectors.state import StateDecode, decode_state
from vutrace.analysis.frame import Capture
from vutrace.analysis.throughput import Stream, streams


@dataclass
class StreamContents:
    """One transfer: its metadata, the bytes the capture holds from offset 0, and their decode."""

    stream: Stream
    data: bytes
    decoded: StateDecode | None
    """None when the capture holds none of the stream's bytes (refused, hashed, or no chunk recorded)."""
    notes: list[str] = field(default_factory=list)
    """Why the bytes are incomplete or cannot be trusted, one sentence each."""

    @property
    def size(self) -> int:
        """The bytes the stream carried (the proxy's count at close, else the sum of the chunks)."""
        return self.stream.total

    @property
    def complete(self) -> bool:
        return len(self.data) == self.size and not self.notes

    def to_dict(self, *, raw: bool = False) -> dict[str, Any]:
        s = self.stream
        out: dict[str, Any] = {
            "side": s.side,
            "conn": s.conn,
            "stream": s.stream,
            "direction": s.direction,
            "provider": s.provider,
            "state_error": s.state_error,
            "size": self.size,
            "captured": len(self.data),
            "complete": self.complete,
            "notes": list(self.notes),
            "decoded": self.decoded.to_dict() if self.decoded is not None else None,
        }
        if raw:
            out["raw"] = self.data.hex()
        return out


def _raw_column(capture: Capture) -> dict[int, Any]:
    if "raw" not in capture.df.columns:
        return {}
    state_rows = capture.df["channel"] == "state"
    column = capture.df.loc[state_rows, "raw"]
    return dict(zip(column.index.tolist(), column.tolist(), strict=True))


def join_chunks(stream: Stream, raw: dict[int, Any]) -> tuple[bytes, list[str]]:
    """The stream's bytes contiguous from offset 0, and notes on what is missing."""
    parts: list[bytes] = []
    position = 0
    notes: list[str] = []
    hashed = 0
    gap_at: int | None = None
    for chunk in sorted(stream.chunks, key=lambda c: (c.offset, c.row)):
        data = raw.get(chunk.row)
        if not isinstance(data, bytes) or len(data) != chunk.length:
            hashed += chunk.length
            gap_at = position if gap_at is None else gap_at
            continue
        if gap_at is not None:
            continue
        if chunk.offset > position:
            notes.append(f"bytes {position} to {chunk.offset - 1} are missing from the capture")
            gap_at = position
            continue
        if chunk.offset + chunk.length > position:
            parts.append(data[position - chunk.offset :])
            position = chunk.offset + chunk.length
    if hashed:
        notes.append(
            f"the capture keeps only the length and SHA-256 of {hashed} bytes (recorded with state payload "
            '"hash"): their contents cannot be decoded'
        )
    data = b"".join(parts)
    if stream.recorded_total is not None and stream.recorded_total > len(data) and not notes:
        notes.append(f"the stream carried {stream.recorded_total} bytes, the capture holds the first {len(data)}")
    recorded = stream.sha256 if stream.sha256_source == "recorded" and len(data) == stream.total else None
    if recorded and not notes and hashlib.sha256(data).hexdigest() != recorded:
        notes.append("the joined chunks do not match the SHA-256 the proxy recorded for the stream")
    return data, notes


def contents(capture: Capture) -> list[StreamContents]:
    """Every device-state transfer of the capture with its decoded contents, in order."""
    raw = _raw_column(capture)
    out = []
    for stream in streams(capture):
        data, notes = join_chunks(stream, raw)
        request_only = not stream.chunks and stream.close_ns is None
        recorded_nothing = not data and (stream.total > 0 or request_only)
        decoded = None if recorded_nothing else decode_state(data)
        out.append(StreamContents(stream, data, decoded, notes))
    return out


def rows_frame(found: list[StreamContents]) -> pd.DataFrame:
    """The decoders' flat rows of every stream in one DataFrame, with the stream's identity in front."""
    records = []
    for item in found:
        if item.decoded is None:
            continue
        s = item.stream
        ident = {
            "side": s.side,
            "conn": s.conn,
            "stream": s.stream,
            "direction": s.direction,
            "format": item.decoded.format,
        }
        records.extend({**ident, **row} for row in item.decoded.rows)
    return pd.DataFrame.from_records(records)
