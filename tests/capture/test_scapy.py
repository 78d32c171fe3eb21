"""scapy's rdpcap on a vutrace capture gives dissected vhost-user packets."""

from __future__ import annotations

import json
from pathlib import Path

from capture_samples import sample_records, write_capture
from scapy.packet import Raw
from scapy.utils import rdpcap

from dissectors.layers import VhostUserHeader
from vutrace.capture import record_format as rf
from vutrace.capture.model import RecordKind
from vutrace.capture.scapy_layer import VutraceRecord, fields_of


def test_rdpcap_gives_vutrace_records_with_dissected_messages(tmp_path: Path) -> None:
    records = sample_records()
    packets = rdpcap(str(write_capture(tmp_path / "c.pcapng", records)))
    assert len(packets) == len(records)
    for packet, record in zip(packets, records, strict=True):
        assert isinstance(packet, VutraceRecord)
        assert packet.magic == rf.MAGIC
        assert packet.kind == record.kind
        assert rf.CHANNEL_NAMES[packet.channel] == record.channel
        assert rf.SENDER_NAMES[packet.sender] == record.sender
        assert packet.conn == record.conn and packet.stream == record.stream
        assert int(packet.time * 10**9) == record.ts_ns
        assert packet.tags[0].value.rstrip(b"\0") == b"vutrace"
        assert [fd.fd for fd in packet.fd_entries] == [fd.fd for fd in record.fds]
        assert [fd.target.decode(errors="surrogateescape") for fd in packet.fd_entries] == [
            fd.target for fd in record.fds
        ]
        if record.kind is RecordKind.MESSAGE and len(record.data) >= 12:
            assert isinstance(packet.payload, VhostUserHeader)
            assert bytes(packet.payload) == record.data
            assert packet.payload.request == int.from_bytes(record.data[:4], "little")
        elif record.kind is RecordKind.STATE_CHUNK:
            assert packet.state_offset == record.offset and packet.state_length == record.length
            assert packet[Raw].load == record.data
        elif record.kind is RecordKind.EVENT:
            assert packet.event.decode() == record.event
            assert (json.loads(packet.attrs) if packet.attrs else {}) == record.attrs


def test_fields_of_flattens_the_layers(tmp_path: Path) -> None:
    records = sample_records()
    packets = rdpcap(str(write_capture(tmp_path / "c.pcapng", records)))
    fields = fields_of(packets[4])
    assert fields["conn"] == 1 and int(fields["features"]) == 0x8000_0001_7000_0000


def test_directions_and_interfaces_reach_scapy(tmp_path: Path) -> None:
    packets = rdpcap(str(write_capture(tmp_path / "c.pcapng", sample_records(), socket_path="/s")))
    assert packets[3].direction == rf.DIRECTION_OUTBOUND
    assert packets[4].direction == rf.DIRECTION_INBOUND
    assert packets[3].sniffed_on == "vu:/s#1/main"
