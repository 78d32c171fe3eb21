"""The capture's rows as dicts (``Capture.records``) are exactly what a row-by-row conversion gives.

``plain_rows`` builds one dict per shape of row and copies it; ``reference_rows`` below is the
straightforward conversion it replaced (every cell of every row through ``plain``). The two must give
the same dicts (keys, key order, values, value types) on the sample captures, on captures built here
with every kind of record, on filtered frames and on frames with columns a notebook user adds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from analysis_captures import (
    EVENTFD,
    MEMFD,
    STATE,
    Conversation,
    close_stream,
    destination,
    qemu_transfer,
    running,
    source,
    state_stream,
)

from dissectors.encode import encode
from vutrace.analysis.frame import PER_RECORD, Capture
from vutrace.loader import frame_from_records, load

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted((ROOT / "samples").glob("*.pcapng")) + sorted((ROOT / "tests" / "capture" / "data").glob("*.pcapng"))


def reference_plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (tuple, list, dict, bytes, str)):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        return value
    if hasattr(value, "item"):
        return value.item()
    return value


def reference_column(series: pd.Series) -> list[Any]:
    values = series.astype(object).tolist()
    if series.dtype == object or isinstance(series.dtype, pd.StringDtype) or series.dtype == "str":
        return [reference_plain(v) for v in values]
    mask = series.isna().tolist()
    return [None if missing else reference_plain(v) for v, missing in zip(values, mask, strict=True)]


def reference_rows(df: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """Every row as a dict of its non-NA cells, with the row index under "row", one cell at a time."""
    names = list(df.columns)
    columns = [reference_column(df[name]) for name in names]
    for index, values in zip(df.index.tolist(), zip(*columns, strict=True), strict=True):
        row: dict[str, Any] = {"row": int(index)}
        row.update((name, value) for name, value in zip(names, values, strict=True) if value is not None)
        yield row


def assert_same_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    records = Capture(df).records
    assert [repr(r) for r in records] == [repr(r) for r in reference_rows(df)]
    return records


def everything() -> Conversation:
    """A migration source with malformed messages, late FDs, an error event, unanswered and unpaired
    replies, a memory table, config bytes and an aborted second stream."""
    c = source()
    regions = [(0, 1 << 20, 1 << 40, 0), (1 << 30, 4096, 0, 0)]
    c.request("SET_MEM_TABLE", fds=(MEMFD, MEMFD), late_fds=1, regions=regions)
    c.request("SET_CONFIG", config_offset=0, config_size=4, config_flags=0, config_data=b"abcd")
    c.reply("GET_SHMEM_CONFIG", shmem_sizes=(1, 2))
    c.raw(b"\x01\x00")
    c.raw(encode(99))
    c.raw(encode("GET_FEATURES", flags=0x9))
    c.raw(encode("SET_VRING_NUM")[:14])
    c.reply("GET_VRING_BASE", vring=0, num=3)
    c.request("GET_QUEUE_NUM")
    c.backend_request("VRING_CALL", vring=1, num=0, fds=(EVENTFD,))
    c.event("error", error="read failed: connection reset")
    c.event("error", detail="no error attribute")
    qemu_transfer(c, STATE[:5000], 0)
    state_stream(c, STATE, "SAVE", close=False)
    close_stream(c, STATE[:100], "SAVE")
    c.event("disconnect", closed_by="backend")
    return c


def interleaved(*conversations: Conversation) -> Conversation:
    """The conversations on connections 1, 2, ... in one capture, their records merged by time."""
    merged = Conversation()
    keyed = [
        (r.ts_ns, n, i, dataclasses.replace(r, conn=n))
        for n, c in enumerate(conversations, start=1)
        for i, r in enumerate(c.records)
    ]
    merged.records = [r for *_, r in sorted(keyed, key=lambda k: k[:3])]
    return merged


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_sample_captures(path: Path) -> None:
    assert_same_rows(load(path))


@pytest.mark.parametrize("state_payload", ["full", "hash"])
def test_captures_with_every_kind_of_record(tmp_path: Path, state_payload: str) -> None:
    df = interleaved(everything(), destination(), running()).write(tmp_path / "all.pcapng", state_payload)
    records = assert_same_rows(df)
    kinds = {(r["channel"], r["request"]) for r in records}
    assert {("state", "STATE_CHUNK" if state_payload == "full" else "STATE_CHUNK_HASHED"), ("event", "error")} <= kinds
    keys = set().union(*records)
    assert {"reply_to", "latency_ns", "regions", "config_data", "shmem_sizes", "attrs", "offset"} <= keys
    assert any("truncated" in r.get("error", "") for r in records)


def test_filtered_and_sliced_frames(tmp_path: Path) -> None:
    df = everything().write(tmp_path / "c.pcapng")
    assert_same_rows(df[df["channel"] == "main"])
    assert_same_rows(df.iloc[::3])
    assert_same_rows(df.iloc[:0])


def test_frames_of_live_pieces_put_together() -> None:
    """A live capture arrives in pieces, each framed alone (with its own payload columns and request names),
    then concatenated: columns missing from a piece are NA there, the request names become plain text."""
    records = everything().records
    pieces = [frame_from_records(records[start : start + 40]) for start in range(0, len(records), 40)]
    df = pd.concat(pieces, ignore_index=True)
    assert len({tuple(p.columns) for p in pieces}) == len(pieces)
    assert not isinstance(df["request"].dtype, pd.CategoricalDtype)
    assert_same_rows(df)


def test_columns_a_notebook_adds(tmp_path: Path) -> None:
    df = everything().write(tmp_path / "c.pcapng")
    n = len(df)
    df["latency_ms"] = df["latency_ns"].astype("float64") / 1e6
    df["signed_zero"] = np.resize([0.0, -0.0, np.nan], n)
    df["mixed"] = pd.Series(np.resize(np.array([(1,), (True,), 1, True, np.int64(1), None, b"x", 1.0], object), n))
    df["kind"] = pd.Categorical(np.resize([1, 2, None], n))
    df["when"] = pd.to_datetime(df["ts_ns"])
    df["big"] = pd.array(np.resize([2**64 - 1, None], n), dtype="UInt64")
    df["maybe"] = pd.array(np.resize([True, None, False], n), dtype="boolean")
    df["note"] = pd.Series(np.resize(["a", None], n), dtype="str")
    df["at"] = np.resize([dt.date(2026, 1, 1), None], n)
    assert_same_rows(df)


def test_rows_of_one_shape_differ_only_in_per_record_columns(tmp_path: Path) -> None:
    df = interleaved(everything(), running()).write(tmp_path / "c.pcapng")
    shapes = Capture(df).shapes
    assert len(shapes.examples) < len(df)
    for number, record in zip(shapes.number.tolist(), shapes.records, strict=True):
        example = shapes.examples[number]
        assert record.keys() == example.keys()
        shared = [k for k in record if k != "row" and k not in PER_RECORD]
        assert [repr(record[k]) for k in shared] == [repr(example[k]) for k in shared]
    assert [r["row"] for r in shapes.examples] == [shapes.records[i]["row"] for i in shapes.firsts.tolist()]
