"""Load a capture into a pandas DataFrame: one row per message, state chunk or event.

The columns and the row of a single record are in ``vutrace.rows`` (no pandas there).

The columns are built whole (numpy and Arrow arrays, never a row at a time): the pseudo-headers
are read column-wise by ``vutrace.capture.scan``, and each distinct message (bytes, channel, FD
count) is decoded once by ``dissectors.records.decode``; its fields are then spread to every row
that carries the same message. Column reference: docs/capture-format.md, "The DataFrame".
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.core.arrays.string_arrow import ArrowStringArray

from dissectors.records import BASE_KEYS, decode
from vutrace.capture import blocks
from vutrace.capture import record_format as rf
from vutrace.capture.blocks import WalkState
from vutrace.capture.model import CaptureRecord, EventName, RecordKind
from vutrace.capture.pairing import NO_REPLY, pair_replies, reply_expectation
from vutrace.capture.pcapng import read_batch
from vutrace.capture.scan import RecordBatch, scan
from vutrace.rows import STATE_CHUNK, STATE_CHUNK_HASHED, event_error, hex_or_none

CHANNELS = ["main", "backend", "state", "event"]
SENDERS = ["frontend", "backend", "proxy"]
TEXT_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)
"""pandas' default string dtype ("str"), used for every text column."""

Progress = Callable[[float], None]


def load(path: str | os.PathLike[str], *, progress: Progress | None = None) -> pd.DataFrame:
    """Read a capture file into a DataFrame (see docs/capture-format.md, "The DataFrame").

    Raises ``CaptureFormatError`` for a file that is not a vutrace capture; a cut-off last record
    gives a ``CaptureTruncatedWarning``. ``progress`` is called with the fraction done (0..1).
    """
    batch = read_batch(path)
    if progress:
        progress(0.3)
    return frame_from_batch(batch, progress, release_buffer=True)


def frame_from_records(records: Iterable[CaptureRecord]) -> pd.DataFrame:
    """The DataFrame of records held in memory (the proxy's live view), built exactly like ``load``."""
    parts = [blocks.section_header("vutrace")]
    interfaces: dict[tuple[int, str], int] = {}
    for record in records:
        key = (record.conn, str(record.channel))
        if key not in interfaces:
            interfaces[key] = len(interfaces)
            parts.append(blocks.interface_description(f"#{key[0]}/{key[1]}"))
        packet = rf.exported_pdu_tags(record.kind, "") + rf.encode_record(record)
        parts.append(blocks.enhanced_packet(interfaces[key], record.ts_ns, packet))
    buf = b"".join(parts)
    state = WalkState()
    packets, _ = blocks.walk(buf, state)
    return frame_from_batch(scan(buf, packets, state))


@dataclass
class _Distinct:
    """The distinct messages of a capture: ``decoded[ids[j]]`` is the record of message row ``rows[j]``."""

    rows: np.ndarray
    ids: np.ndarray
    decoded: list[dict[str, object]]


def frame_from_batch(
    batch: RecordBatch, progress: Progress | None = None, *, release_buffer: bool = False
) -> pd.DataFrame:
    """The DataFrame of a scanned batch. ``release_buffer`` drops ``batch.buf`` as soon as every
    record's bytes are copied out (``load`` does, to keep the peak memory down)."""
    n = len(batch)
    raw = list(map(batch.buf.__getitem__, map(slice, batch.data_start.tolist(), batch.data_end.tolist())))
    events = np.flatnonzero(batch.kind == RecordKind.EVENT).tolist()
    event_parts = {i: batch.event(i) for i in events}
    states = np.flatnonzero(batch.kind == RecordKind.STATE_CHUNK)
    fds = _fd_descriptions(batch)
    sha256 = _sparse_text(n, {i: hex_or_none(batch.sha256(i)) for i in states.tolist()})
    if release_buffer:
        batch.buf = b""
    distinct = _decode_distinct(batch, raw)
    if progress:
        progress(0.6)
    fields = _spread(distinct, n)
    if progress:
        progress(0.8)
    reply_to, latency = _pairs(batch, distinct)
    columns: dict[str, object] = {
        "ts_ns": batch.ts_ns.astype(np.int64),
        "conn": batch.conn,
        "channel": pd.Categorical.from_codes(batch.channel.astype(np.int64) - 1, categories=CHANNELS),
        "sender": pd.Categorical.from_codes(batch.sender.astype(np.int64) - 1, categories=SENDERS),
        "request": _request_column(batch, distinct, event_parts),
        "request_id": fields.pop("request_id"),
        "is_reply": _plain_bool(fields.pop("is_reply")),
        "flags": fields.pop("flags"),
        "size": fields.pop("size"),
        "nfds": batch.nfds.astype(np.int64),
        "fds": fds,
        "late_fds": batch.late_fds.astype(np.int64),
        "nbytes": _int_column(n, states, batch.state_length[states]),
        "reply_to": pd.arrays.IntegerArray(reply_to, reply_to < 0),
        "latency_ns": pd.arrays.IntegerArray(latency, reply_to < 0),
        "error": _errors(fields.pop("error"), event_parts),
        "need_reply": _plain_bool(fields.pop("need_reply")),
    }
    columns.update(fields)
    columns["stream"] = batch.stream
    columns["offset"] = _int_column(n, states, batch.state_offset[states])
    columns["sha256"] = sha256
    columns["attrs"] = _sparse_text(
        n, {i: json.dumps(attrs, separators=(",", ":")) for i, (_, attrs) in event_parts.items()}
    )
    raw_column = np.empty(n, dtype=object)
    raw_column[:] = raw
    del raw
    columns["raw"] = raw_column
    frame = pd.DataFrame(columns, copy=False)
    if progress:
        progress(1.0)
    return frame


def _decode_distinct(batch: RecordBatch, raw: list[bytes]) -> _Distinct:
    """Decode each distinct (bytes, channel, nfds) once."""
    rows = np.flatnonzero(batch.kind == RecordKind.MESSAGE)
    group = batch.channel[rows].astype(np.int64) << 8 | batch.nfds[rows]
    ids = np.empty(len(rows), dtype=np.int64)
    decoded: list[dict[str, object]] = []
    for key in np.unique(group).tolist():
        members = np.flatnonzero(group == key)
        channel, nfds = CHANNELS[(key >> 8) - 1], key & 0xFF
        data = list(map(raw.__getitem__, rows[members].tolist()))
        index = {message: i for i, message in enumerate(dict.fromkeys(data), start=len(decoded))}
        ids[members] = np.fromiter(map(index.__getitem__, data), dtype=np.int64, count=len(data))
        decoded.extend(decode(message, channel, nfds) for message in index)
    return _Distinct(rows, ids, decoded)


def _spread(distinct: _Distinct, n: int) -> dict[str, object]:
    """Columns of length ``n`` from the decoded records (every key of any record; None where absent).

    Records with the same keys (a "schema", one per message layout) are handled together: their
    rows are found once, and each field is copied to them with one numpy gather.
    """
    decoded, ids = distinct.decoded, distinct.ids
    schema_of: dict[tuple[str, ...], int] = {}
    schema_id = np.empty(len(decoded), dtype=np.int64)
    members: list[list[int]] = []
    for index, record in enumerate(decoded):
        sid = schema_of.setdefault(tuple(record), len(schema_of))
        if sid == len(members):
            members.append([])
        members[sid].append(index)
        schema_id[index] = sid
    position = np.empty(len(decoded), dtype=np.int64)
    for group in members:
        position[group] = np.arange(len(group))
    row_schema = schema_id[ids]
    order = np.argsort(row_schema, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(row_schema, minlength=len(members)))))
    parts: dict[str, list[tuple[tuple, np.ndarray, np.ndarray]]] = {name: [] for name in BASE_KEYS}
    for schema, sid in schema_of.items():
        picked = order[bounds[sid] : bounds[sid + 1]]
        rows, where = distinct.rows[picked], position[ids[picked]]
        table = zip(*(decoded[m].values() for m in members[sid]), strict=True)
        for name, values in zip(schema, table, strict=True):
            parts.setdefault(name, []).append((values, rows, where))
    return {name: _column(n, column_parts) for name, column_parts in parts.items() if name != "request"}


def _column(n: int, parts: list[tuple[tuple, np.ndarray, np.ndarray]]) -> object:
    """One column: ``parts`` are (distinct values of a schema, its rows, each row's index into the values)."""
    types: set[type] = set()
    for values, _, _ in parts:
        types.update(map(type, values))
    types.discard(type(None))
    if types == {bool}:
        return _masked(n, parts, np.bool_, pd.arrays.BooleanArray)
    if types == {int}:
        for dtype in (np.int64, np.uint64):
            try:
                return _masked(n, parts, dtype, pd.arrays.IntegerArray)
            except OverflowError:
                continue
    if types <= {str}:
        index = np.full(n, -1, dtype=np.int64)
        texts: list[str | None] = []
        for values, rows, where in parts:
            index[rows] = where + len(texts)
            texts.extend(values)
        return _text_column(texts, index)
    full = np.full(n, None, dtype=object)
    for values, rows, where in parts:
        objects = np.empty(len(values), dtype=object)
        for i, value in enumerate(values):
            objects[i] = value
        full[rows] = objects[where]
    return full


def _masked(n: int, parts: list[tuple[tuple, np.ndarray, np.ndarray]], dtype: type, array: type) -> object:
    """A nullable (masked) numpy-backed column; raises OverflowError if a value does not fit ``dtype``."""
    full, mask = np.zeros(n, dtype=dtype), np.ones(n, dtype=bool)
    for values, rows, where in parts:
        if None in values:
            present = np.array([v is not None for v in values])
            values = tuple(0 if v is None else v for v in values)
            mask[rows] = ~present[where]
        else:
            mask[rows] = False
        full[rows] = np.array(values, dtype=dtype)[where]
    return array(full, mask)


def _text_column(texts: list[str | None], index: np.ndarray) -> ArrowStringArray:
    """A "str" column whose row ``i`` is ``texts[index[i]]`` (missing where the index is negative)."""
    values = pa.array(texts, type=pa.large_string()).take(pa.array(index, mask=index < 0))
    return ArrowStringArray(pa.chunked_array([values]), dtype=TEXT_DTYPE)


def _sparse_text(n: int, texts: dict[int, str | None]) -> ArrowStringArray:
    index = np.full(n, -1, dtype=np.int64)
    index[list(texts)] = np.arange(len(texts))
    return _text_column(list(texts.values()), index)


def _int_column(n: int, rows: np.ndarray, values: np.ndarray) -> pd.arrays.IntegerArray:
    dtype = np.uint64 if len(values) and int(values.max()) >= 2**63 else np.int64
    full, mask = np.zeros(n, dtype=dtype), np.ones(n, dtype=bool)
    full[rows], mask[rows] = values.astype(dtype), False
    return pd.arrays.IntegerArray(full, mask)


def _plain_bool(column: object) -> np.ndarray:
    """A nullable boolean column as plain bool (missing = False)."""
    if isinstance(column, pd.arrays.BooleanArray):
        return column.to_numpy(dtype=bool, na_value=False)
    return np.zeros(len(column), dtype=bool)


def _request_column(batch: RecordBatch, distinct: _Distinct, events: dict[int, tuple[str, dict]]) -> pd.Categorical:
    """Message names from the decoder; STATE_CHUNK(_HASHED) for state chunks; the event name for events."""
    names: dict[str, int] = {}
    codes = np.full(len(batch), -1, dtype=np.int64)
    distinct_codes = np.array([names.setdefault(str(r["request"]), len(names)) for r in distinct.decoded], np.int64)
    codes[distinct.rows] = distinct_codes[distinct.ids] if len(distinct.ids) else codes[distinct.rows]
    for i in np.flatnonzero(batch.kind == RecordKind.STATE_CHUNK).tolist():
        name = STATE_CHUNK_HASHED if batch.flags[i] & rf.FLAG_DATA_OMITTED else STATE_CHUNK
        codes[i] = names.setdefault(name, len(names))
    for i, (name, _) in events.items():
        codes[i] = names.setdefault(name, len(names))
    return pd.Categorical.from_codes(codes, categories=list(names))


def _pairs(batch: RecordBatch, distinct: _Distinct) -> tuple[np.ndarray, np.ndarray]:
    """reply_to and latency_ns; only replies and requests that wait for one go through the Python loop."""
    decoded = distinct.decoded
    channel_of = np.zeros(len(decoded), dtype=np.int64)
    channel_of[distinct.ids] = batch.channel[distinct.rows]
    expect = np.array(
        [_expectation(r, CHANNELS[c - 1]) for r, c in zip(decoded, channel_of.tolist(), strict=True)], dtype=np.int64
    )
    is_reply = np.array([bool(r["is_reply"]) and r["request_id"] is not None for r in decoded], dtype=bool)
    request_id = np.array([-1 if r["request_id"] is None else r["request_id"] for r in decoded], dtype=np.int64)
    involved = is_reply[distinct.ids] | (expect[distinct.ids] != NO_REPLY)
    rows, ids = distinct.rows[involved], distinct.ids[involved]
    return pair_replies(
        rows,
        batch.conn[rows].tolist(),
        batch.channel[rows].tolist(),
        request_id[ids].tolist(),
        is_reply[ids].tolist(),
        expect[ids].tolist(),
        batch.ts_ns,
        len(batch),
    )


def _expectation(record: dict[str, object], channel: str) -> int:
    if record["request_id"] is None or record["is_reply"] or channel not in ("main", "backend"):
        return NO_REPLY
    return reply_expectation(channel, int(record["request_id"]), bool(record["need_reply"]))


def _fd_descriptions(batch: RecordBatch) -> ArrowStringArray:
    """The FDs' ``describe()`` joined by "; " ("" when none); each distinct FD part is parsed once."""
    index = np.zeros(len(batch), dtype=np.int64)
    cache: dict[bytes, int] = {}
    texts: list[str] = [""]
    for i in np.flatnonzero(batch.nfds).tolist():
        start, end = batch.fd_part(i)
        key = batch.buf[start:end] + bytes([batch.kind[i], batch.nfds[i]])
        slot = cache.get(key)
        if slot is None:
            slot = cache[key] = len(texts)
            texts.append("; ".join(fd.describe() for fd in batch.fds(i)))
        index[i] = slot
    return _text_column(texts, index)


def _errors(decoded: object, events: dict[int, tuple[str, dict]]) -> object:
    """Decode errors for messages; for an ``error`` event its ``error``/``message`` attribute (or all of them)."""
    errors = pd.array(decoded, dtype=TEXT_DTYPE) if not isinstance(decoded, ArrowStringArray) else decoded
    failures = {i: attrs for i, (name, attrs) in events.items() if name == EventName.ERROR}
    if not failures:
        return errors
    errors = errors.copy()
    for i, attrs in failures.items():
        errors[i] = event_error(attrs)
    return errors
