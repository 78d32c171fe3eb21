"""The detail tree items of a record: names from the spec table, regions as a table, FDs, pairing, events."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dissectors.fieldmap import field_spans
from vutrace.loader import load
from vutrace.tui.detail import REGION_HEADER, Item, describe


@pytest.fixture(scope="module")
def frame(captures: tuple[Path, Path]) -> pd.DataFrame:
    return load(captures[0])


def first(frame: pd.DataFrame, request: str, reply: bool = False) -> int:
    return int(frame.index[(frame["request"] == request) & (frame["is_reply"] == reply)][0])


def items_of(frame: pd.DataFrame, row: int, reply_row: int | None = None) -> list[Item]:
    return describe(frame.iloc[row].to_dict(), row + 1, int(frame["ts_ns"].iloc[0]), reply_row)


def find(items: list[Item], prefix: str) -> Item:
    for item in items:
        if item.label.startswith(prefix):
            return item
        try:
            return find(item.children, prefix)
        except LookupError:
            continue
    raise LookupError(prefix)


def test_protocol_feature_bits_are_named(frame: pd.DataFrame) -> None:
    items = items_of(frame, first(frame, "SET_PROTOCOL_FEATURES"))
    word = find(items, "protocol_features")
    assert word.span == "protocol_features"
    assert [c.label for c in word.children] == [
        "bit  0: MQ",
        "bit  1: LOG_SHMFD",
        "bit  3: REPLY_ACK",
        "bit  5: BACKEND_REQ",
        "bit  9: CONFIG",
        "bit 10: BACKEND_SEND_FD",
        "bit 13: RESET_DEVICE",
        "bit 15: CONFIGURE_MEM_SLOTS",
        "bit 19: DEVICE_STATE",
    ]


def test_memory_regions_are_a_table_whose_rows_have_byte_spans(frame: pd.DataFrame) -> None:
    row = first(frame, "SET_MEM_TABLE")
    regions = find(items_of(frame, row), "regions")
    assert regions.children[0].label == REGION_HEADER
    assert regions.children[2].label.split()[:5] == ["1", "0x100000000", "0x40000000", "0x7f8000000000", "0x80000000"]
    assert regions.children[2].label.endswith("memfd:pc.ram 512MiB passed")
    spans = {s.name for s in field_spans(frame.loc[row, "raw"])}
    assert {c.span for c in regions.children[1:]} <= spans


def test_fds_header_flags_and_spec_rules_are_described(frame: pd.DataFrame) -> None:
    row = first(frame, "SET_BACKEND_REQ_FD")
    items = items_of(frame, row, reply_row=row + 2)
    assert find(items, "FDs (1)").children[0].label == "socket substituted"
    assert find(items, "Header").label == "Header: SET_BACKEND_REQ_FD (21), flags 0x9 (version 1, NEED_REPLY), size 0"
    spec_item = find(items, "Spec")
    assert spec_item.children[1].label == "reply: ack; FDs with the request: one"
    assert spec_item.children[2].label == "needs: PROTOCOL_FEATURES, protocol feature BACKEND_REQ"
    assert find(items, "Answered by record").label == f"Answered by record {row + 3}"


def test_a_reply_names_its_request_and_latency(frame: pd.DataFrame) -> None:
    row = first(frame, "GET_VRING_BASE", reply=True)
    assert find(items_of(frame, row), "Reply to").label == f"Reply to record {row}, after 50µs"


def test_device_state_fields_have_their_spec_names(frame: pd.DataFrame) -> None:
    items = items_of(frame, first(frame, "SET_DEVICE_STATE_FD"))
    assert find(items, "direction").label == "direction: 0 (SAVE)"
    assert find(items, "phase").label == "phase: 0 (STOPPED)"
    reply = items_of(frame, first(frame, "SET_DEVICE_STATE_FD", reply=True))
    assert find(reply, "nofd").label == "nofd: True (no FD sent (invalid-FD flag))"


def test_events_and_state_chunks_show_their_attributes(frame: pd.DataFrame) -> None:
    close = int(frame.index[frame["request"] == "state_close"][0])
    event = find(items_of(frame, close), "Proxy event: state_close")
    assert "bytes: 12288" in [c.label for c in event.children]
    chunk = int(frame.index[frame["channel"] == "state"][1])
    assert [c.label for c in find(items_of(frame, chunk), "Device-state chunk").children] == [
        "stream: 1",
        "offset: 4096",
        "nbytes: 4096",
    ]
