"""Device-state transfer throughput: bytes over time, rates, chunk sizes, totals and SHA-256.

A transfer starts with SET_DEVICE_STATE_FD; the proxy relays the stream through its own pipe and
records each read() as a state chunk, with ``state_open`` / ``state_close`` events around them
(the close event carries the byte total and the SHA-256 of the whole stream). Who provided the
channel shows in the reply: bit 8 (no FD) set means the back-end uses the front-end's pipe,
clear means it returned its own FD.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from dissectors import spec
from vutrace.analysis.frame import Capture, attrs_of, is_chunk, is_event, is_request

MAX_BINS = 50


@dataclass
class Chunk:
    ts_ns: int
    row: int
    offset: int
    length: int


@dataclass
class Stream:
    """One device-state transfer of one capture."""

    side: str
    conn: int
    stream: int
    direction: str
    """SAVE, LOAD or "?"."""
    request_row: int | None = None
    request_ns: int | None = None
    reply_row: int | None = None
    provider: str = "unknown"
    """"front-end pipe", "back-end FD" or "unknown"."""
    state_error: int | None = None
    open_ns: int | None = None
    close_ns: int | None = None
    close_row: int | None = None
    close_reason: str = ""
    chunks: list[Chunk] = field(default_factory=list)
    recorded_total: int | None = None
    """Byte total from the state_close event."""
    sha256: str | None = None
    sha256_source: str = ""
    """"recorded" (state_close event), "computed" (from the chunk bytes) or ""."""

    @property
    def total(self) -> int:
        if self.recorded_total is not None:
            return self.recorded_total
        return sum(c.length for c in self.chunks)

    @property
    def start_ns(self) -> int | None:
        for value in (self.request_ns, self.open_ns):
            if value is not None:
                return value
        return self.chunks[0].ts_ns if self.chunks else None

    @property
    def end_ns(self) -> int | None:
        if self.close_ns is not None:
            return self.close_ns
        return self.chunks[-1].ts_ns if self.chunks else None

    @property
    def duration_ns(self) -> int | None:
        if self.start_ns is None or self.end_ns is None:
            return None
        return self.end_ns - self.start_ns

    @property
    def first_byte_ns(self) -> int | None:
        """From SET_DEVICE_STATE_FD (or the stream opening) to the first chunk."""
        if not self.chunks or self.start_ns is None:
            return None
        return self.chunks[0].ts_ns - self.start_ns

    @property
    def average_rate(self) -> float | None:
        """Bytes per second over the whole transfer."""
        duration = self.duration_ns
        if not duration or duration <= 0:
            return None
        return self.total / (duration / 1e9)

    def bins(self, count: int = MAX_BINS) -> tuple[int, list[tuple[int, int]]]:
        """(bin width in ns, [(bin start ns, bytes)]) over the transfer: at most ``count`` bins, and no more
        than there are chunks (a rate cannot be resolved finer than the reads that make it up)."""
        start, end = self.start_ns, self.end_ns
        if start is None or end is None or not self.chunks:
            return 0, []
        count = max(1, min(count, len(self.chunks)))
        span = max(end - start, 1)
        width = max(-(-span // count), 1)
        totals = [0] * -(-span // width)
        for chunk in self.chunks:
            totals[min(max(chunk.ts_ns - start, 0) // width, len(totals) - 1)] += chunk.length
        return width, [(start + i * width, b) for i, b in enumerate(totals)]

    @property
    def peak_rate(self) -> float | None:
        """The highest rate of one bin (bytes per second); the whole transfer if it fits one bin."""
        width, bins = self.bins()
        if not bins:
            return None
        if len(bins) == 1:
            return self.average_rate
        return max(b for _, b in bins) / (width / 1e9)

    def chunk_sizes(self) -> dict[str, Any]:
        """Distribution of chunk lengths: count, min, median, max, and a power-of-two histogram."""
        lengths = sorted(c.length for c in self.chunks)
        if not lengths:
            return {"count": 0}
        histogram: dict[str, int] = {}
        for n in lengths:
            upper = 1 << max(n - 1, 0).bit_length()
            key = f"<= {upper}"
            histogram[key] = histogram.get(key, 0) + 1
        return {
            "count": len(lengths),
            "min": lengths[0],
            "median": lengths[len(lengths) // 2],
            "max": lengths[-1],
            "histogram": histogram,
        }

    def to_dict(self) -> dict[str, Any]:
        width, bins = self.bins()
        return {
            "side": self.side,
            "conn": self.conn,
            "stream": self.stream,
            "direction": self.direction,
            "provider": self.provider,
            "request_row": self.request_row,
            "request_ns": self.request_ns,
            "state_error": self.state_error,
            "close_reason": self.close_reason,
            "total_bytes": self.total,
            "chunks": len(self.chunks),
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "duration_ns": self.duration_ns,
            "first_byte_ns": self.first_byte_ns,
            "average_rate": self.average_rate,
            "peak_rate": self.peak_rate,
            "chunk_sizes": self.chunk_sizes(),
            "bin_ns": width,
            "bins": bins,
            "sha256": self.sha256,
            "sha256_source": self.sha256_source,
        }


def _transfer_row(row: dict[str, Any]) -> bool:
    """The rows ``streams`` looks at: SET_DEVICE_STATE_FD requests, state chunks, stream events."""
    return (
        (is_request(row) and row.get("request") == "SET_DEVICE_STATE_FD" and row.get("channel") == "main")
        or is_chunk(row)
        or is_event(row, "state_open", "state_close")
    )


def streams(capture: Capture) -> list[Stream]:
    """Every device-state transfer in a capture, in order."""
    found: dict[tuple[int, int], Stream] = {}
    requests: dict[int, list[dict[str, Any]]] = {}
    replies = capture.replies()
    digests: dict[tuple[int, int], Any] = {}
    complete: dict[tuple[int, int], bool] = {}
    for row in capture.shapes.where(_transfer_row):
        conn = int(row.get("conn", 0))
        if is_request(row) and row.get("request") == "SET_DEVICE_STATE_FD" and row.get("channel") == "main":
            requests.setdefault(conn, []).append(row)
            continue
        if not (is_chunk(row) or is_event(row, "state_open", "state_close")):
            continue
        number = int(row.get("stream") or 0)
        key = (conn, number)
        stream = found.get(key)
        if stream is None:
            stream = found[key] = Stream(capture.label, conn, number, "?")
            _attach_request(stream, requests.get(conn, []), replies)
        if is_chunk(row):
            length = int(row.get("nbytes") or 0)
            stream.chunks.append(Chunk(int(row["ts_ns"]), row["row"], int(row.get("offset") or 0), length))
            data = row.get("raw")
            if isinstance(data, bytes) and len(data) == length:
                digests.setdefault(key, hashlib.sha256()).update(data)
            else:
                complete[key] = False
            continue
        attrs = attrs_of(row)
        if attrs.get("direction"):
            stream.direction = str(attrs["direction"])
        if row.get("request") == "state_open":
            stream.open_ns = int(row["ts_ns"])
        else:
            stream.close_ns, stream.close_row = int(row["ts_ns"]), row["row"]
            stream.close_reason = str(attrs.get("reason") or "")
            if attrs.get("bytes") is not None:
                stream.recorded_total = int(attrs["bytes"])
            if attrs.get("sha256"):
                stream.sha256, stream.sha256_source = str(attrs["sha256"]), "recorded"
    for key, stream in found.items():
        if stream.sha256 is None and key in digests and complete.get(key, True):
            stream.sha256, stream.sha256_source = digests[key].hexdigest(), "computed"
    for conn, rows in requests.items():
        for position, row in enumerate(rows):
            if not any(s.conn == conn and s.request_row == row["row"] for s in found.values()):
                stream = Stream(capture.label, conn, -(position + 1), "?")
                _fill_request(stream, row, replies)
                found[(conn, stream.stream)] = stream
    return sorted(found.values(), key=lambda s: s.start_ns or 0)


def _attach_request(stream: Stream, requests: list[dict[str, Any]], replies: dict[int, dict[str, Any]]) -> None:
    """Link a stream to its SET_DEVICE_STATE_FD: the proxy numbers a connection's streams from 1 in the order
    of the accepted requests."""
    accepted = [r for r in requests if not (replies.get(r["row"]) or {}).get("state_error")]
    if 1 <= stream.stream <= len(accepted):
        _fill_request(stream, accepted[stream.stream - 1], replies)
    elif accepted:
        _fill_request(stream, accepted[-1], replies)


def _fill_request(stream: Stream, row: dict[str, Any], replies: dict[int, dict[str, Any]]) -> None:
    stream.request_row, stream.request_ns = row["row"], int(row["ts_ns"])
    direction = row.get("direction")
    if direction is not None:
        stream.direction = spec.TRANSFER_DIRECTION.get(int(direction), f"direction {direction}")
    reply = replies.get(row["row"])
    if reply is not None:
        stream.reply_row = reply["row"]
        stream.state_error = reply.get("state_error")
        if reply.get("nofd") is not None:
            stream.provider = "front-end pipe" if reply["nofd"] else "back-end FD"


@dataclass
class Comparison:
    """Source and destination stream of one migration side by side."""

    source: Stream | None
    destination: Stream | None

    @property
    def same_size(self) -> bool | None:
        if self.source is None or self.destination is None:
            return None
        return self.source.total == self.destination.total

    @property
    def same_hash(self) -> bool | None:
        if self.source is None or self.destination is None or not self.source.sha256 or not self.destination.sha256:
            return None
        return self.source.sha256 == self.destination.sha256

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_bytes": self.source.total if self.source else None,
            "destination_bytes": self.destination.total if self.destination else None,
            "same_size": self.same_size,
            "same_sha256": self.same_hash,
        }


def compare(first: list[Stream], second: list[Stream]) -> Comparison:
    """The SAVE stream of one capture against the LOAD stream of the other (in either order)."""
    everything = first + second
    source = next((s for s in everything if s.direction == "SAVE"), None)
    destination = next((s for s in everything if s.direction == "LOAD"), None)
    return Comparison(source, destination)
