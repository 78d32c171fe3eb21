"""The DataFrame loader: columns, agreement with the reader and the decoder, reply pairing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from capture_samples import EVENTFD, MESSAGES, T0, sample_records, write_capture

import vutrace
from dissectors.encode import encode
from dissectors.records import decode
from vutrace.capture.model import CaptureRecord, EventName, RecordChannel, RecordKind
from vutrace.capture.pcapng import read_records
from vutrace.loader import frame_from_records, load
from vutrace.rows import COLUMNS, TRAILING, record_row


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    return write_capture(tmp_path / "c.pcapng", sample_records())


def _same(a: object, b: object) -> bool:
    if a is None or a is pd.NA or (isinstance(a, float) and a != a):
        return b is None or b is pd.NA or (isinstance(b, float) and b != b)
    return a == b


def test_columns_and_dtypes(capture: Path) -> None:
    frame = load(capture)
    assert list(frame.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert list(frame.columns[-len(TRAILING) :]) == list(TRAILING)
    assert frame["ts_ns"].dtype == "int64"
    assert frame["conn"].dtype == "int64"
    assert frame["is_reply"].dtype == bool
    assert frame["request_id"].dtype == "Int64"
    assert frame["latency_ns"].dtype == "Int64"
    assert set(frame["channel"].cat.categories) == {"main", "backend", "state", "event"}
    assert frame["features"].dtype == "UInt64"
    assert frame["error"].dtype == "str" and frame["fds"].dtype == "str"


def test_vutrace_load_is_the_loader(capture: Path) -> None:
    pd.testing.assert_frame_equal(vutrace.load(capture), load(capture))


def test_message_rows_equal_the_decoder_output(capture: Path) -> None:
    frame = load(capture)
    records = list(read_records(capture))
    assert len(frame) == len(records)
    for (_, row), record in zip(frame.iterrows(), records, strict=True):
        assert row["ts_ns"] == record.ts_ns and row["conn"] == record.conn
        assert row["channel"] == record.channel and row["sender"] == record.sender
        assert row["raw"] == record.data
        assert row["nfds"] == len(record.fds)
        assert row["fds"] == "; ".join(fd.describe() for fd in record.fds)
        if record.kind is RecordKind.MESSAGE:
            for key, value in decode(record.data, str(record.channel), len(record.fds)).items():
                assert _same(row[key], value), (key, row[key], value)


def test_state_and_event_rows(capture: Path) -> None:
    frame = load(capture)
    records = list(read_records(capture))
    chunks = frame[frame["channel"] == "state"]
    assert list(chunks["request"].unique()) == ["STATE_CHUNK"]
    assert chunks["nbytes"].tolist() == [r.length for r in records if r.kind is RecordKind.STATE_CHUNK]
    assert chunks["offset"].tolist() == [r.offset for r in records if r.kind is RecordKind.STATE_CHUNK]
    assert chunks["stream"].unique().tolist() == [1]
    events = frame[frame["channel"] == "event"]
    expected = [r for r in records if r.kind is RecordKind.EVENT]
    assert events["request"].tolist() == [str(r.event) for r in expected]
    assert [json.loads(a) for a in events["attrs"]] == [r.attrs for r in expected]
    failure = events[events["request"] == EventName.ERROR]
    assert failure["error"].tolist() == ["peer sent garbage"]


def test_hash_mode_state_rows(tmp_path: Path) -> None:
    frame = load(write_capture(tmp_path / "c.pcapng", sample_records(), state_payload="hash"))
    chunks = frame[frame["channel"] == "state"]
    assert set(chunks["request"]) == {"STATE_CHUNK_HASHED"}
    assert chunks["sha256"].str.len().eq(64).all()
    assert (chunks["raw"] == b"").all()


def test_replies_point_to_their_requests_with_latency(capture: Path) -> None:
    frame = load(capture)
    replies = frame[frame["is_reply"]]
    assert len(replies) == sum(1 for _, _, data, _ in MESSAGES if len(data) >= 8 and data[4] & 0x4)
    for index, reply in replies.iterrows():
        request = frame.loc[reply["reply_to"]]
        assert not request["is_reply"]
        assert request["request_id"] == reply["request_id"]
        assert request["channel"] == reply["channel"] and request["conn"] == reply["conn"]
        assert reply["latency_ns"] == reply["ts_ns"] - request["ts_ns"] > 0
        assert index > reply["reply_to"]
    assert frame.loc[~frame["is_reply"], "reply_to"].isna().all()


def _conversation(*messages: tuple[str, bytes]) -> pd.DataFrame:
    records = [
        CaptureRecord(RecordKind.MESSAGE, T0 + i, 1, RecordChannel(channel), sender, data)
        for i, (channel, data) in enumerate(messages)
        for sender in [
            ("frontend" if channel == "main" else "backend")
            if not data[4] & 4
            else ("backend" if channel == "main" else "frontend")
        ]
    ]
    return frame_from_records(records)


def test_ack_without_need_reply_waits_for_nothing() -> None:
    frame = _conversation(
        ("main", encode("SET_VRING_NUM", vring=0, num=256)),
        ("main", encode("SET_VRING_NUM", need_reply=True, vring=1, num=256)),
        ("main", encode("SET_VRING_NUM", reply=True, result=0)),
    )
    assert frame["reply_to"].tolist() == [pd.NA, pd.NA, 1]


def test_replies_answer_the_oldest_waiting_request_of_their_id_per_channel() -> None:
    frame = _conversation(
        ("main", encode("GET_FEATURES")),
        ("backend", encode("IOTLB_MSG", "backend", need_reply=True, iova=1)),
        ("main", encode("GET_STATUS")),
        ("backend", encode("IOTLB_MSG", "backend", reply=True, result=0)),
        ("main", encode("GET_STATUS", reply=True, status=15)),
        ("main", encode("GET_FEATURES", reply=True, features=1)),
        ("main", encode("GET_FEATURES", reply=True, features=1)),
    )
    assert frame["reply_to"].tolist() == [pd.NA, pd.NA, pd.NA, 1, 2, 0, pd.NA]
    assert frame["latency_ns"].tolist() == [pd.NA, pd.NA, pd.NA, 2, 2, 5, pd.NA]


def test_conditional_request_without_reply_is_dropped_by_the_next_one() -> None:
    frame = _conversation(
        ("main", encode("SET_LOG_BASE", log_size=4096)),
        ("main", encode("SET_LOG_BASE", log_size=8192)),
        ("main", encode("SET_LOG_BASE", reply=True, log_size=8192)),
    )
    assert frame["reply_to"].tolist() == [pd.NA, pd.NA, 1]


def test_frame_from_records_equals_load(capture: Path) -> None:
    pd.testing.assert_frame_equal(frame_from_records(sample_records()), load(capture))


def test_record_row_matches_the_loaded_row(capture: Path) -> None:
    frame = load(capture)
    for (_, row), record in zip(frame.iterrows(), sample_records(), strict=True):
        for key, value in record_row(record).items():
            if key == "attrs" and record.kind is not RecordKind.EVENT:
                continue
            assert _same(row[key], value), (key, row[key], value)


def test_distinct_messages_keep_their_own_fd_warnings(tmp_path: Path) -> None:
    kick = encode("SET_VRING_KICK", vring=0)
    base = CaptureRecord(RecordKind.MESSAGE, T0, 1, RecordChannel.MAIN, "frontend", kick)
    with_fd = replace(base, fds=(EVENTFD,), ts_ns=T0 + 1)
    frame = frame_from_records([base, with_fd, replace(base, ts_ns=T0 + 2)])
    assert frame["warning"].notna().tolist() == [True, False, True]


def test_empty_capture_has_the_columns(tmp_path: Path) -> None:
    frame = load(write_capture(tmp_path / "c.pcapng", []))
    assert len(frame) == 0
    assert set(COLUMNS) <= set(frame.columns)
