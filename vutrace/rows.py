"""A capture record as a row of the loaded DataFrame, without pandas: the column names, the request
names of state chunks, and :func:`record_row` for printing records live as the proxy sees them.

``vutrace.loader`` builds whole frames from the same vocabulary; a command that only prints
records (``vutrace proxy --live``) imports this module and starts without pandas.
"""

from __future__ import annotations

import json

from dissectors.records import decode
from vutrace.capture.model import CaptureRecord, EventName, RecordKind

STATE_CHUNK = "STATE_CHUNK"
"""The ``request`` of a device-state chunk row (events use their event name)."""
STATE_CHUNK_HASHED = "STATE_CHUNK_HASHED"
"""The ``request`` of a state chunk recorded as length and SHA-256 only."""

COLUMNS = (
    "ts_ns",
    "conn",
    "channel",
    "sender",
    "request",
    "request_id",
    "is_reply",
    "flags",
    "size",
    "nfds",
    "fds",
    "late_fds",
    "nbytes",
    "reply_to",
    "latency_ns",
    "error",
    "need_reply",
    "version",
    "payload_len",
    "warning",
)
"""The columns every frame has, in this order; the decoded payload fields follow, then TRAILING."""
TRAILING = ("stream", "offset", "sha256", "attrs", "raw")


def event_error(attrs: dict) -> str:
    """The ``error`` column of an ``error`` event: its error or message attribute, else all attributes."""
    return str(attrs.get("error") or attrs.get("message") or json.dumps(attrs)) if attrs else "error"


def hex_or_none(value: bytes | None) -> str | None:
    return value.hex() if value is not None else None


def record_row(record: CaptureRecord) -> dict[str, object]:
    """One record as a row mapping with the DataFrame's column names, without pairing (reply_to and
    latency_ns stay empty); cheap enough for printing records live as the proxy sees them."""
    row: dict[str, object] = {
        "ts_ns": record.ts_ns,
        "conn": record.conn,
        "channel": str(record.channel),
        "sender": record.sender,
        "nfds": len(record.fds),
        "fds": "; ".join(fd.describe() for fd in record.fds),
        "late_fds": record.late_fds if record.kind == RecordKind.MESSAGE else 0,
        "stream": record.stream,
    }
    if record.kind == RecordKind.MESSAGE:
        row.update(decode(record.data, str(record.channel), len(record.fds)))
    elif record.kind == RecordKind.STATE_CHUNK:
        row["request"] = STATE_CHUNK if record.data or not record.length else STATE_CHUNK_HASHED
        row.update(nbytes=record.length or len(record.data), offset=record.offset, sha256=hex_or_none(record.sha256))
    else:
        row["request"] = str(record.event)
        row["attrs"] = json.dumps(record.attrs, separators=(",", ":"), default=str)
        if record.event == EventName.ERROR:
            row["error"] = event_error(record.attrs)
    row["raw"] = record.data
    return row
