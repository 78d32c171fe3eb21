"""The state channel: written to the end, read to EOF, broken channels and stalls reported with byte counts."""

from __future__ import annotations

import os
import threading

import pytest

from vutrace.sim.errors import PeerClosed, PeerTimeout
from vutrace.sim.fds import close_all, new_pipe
from vutrace.sim.transfer import MigrationStream, receive_stream, send_stream


def test_everything_written_is_read_until_eof() -> None:
    read_end, write_end = new_pipe()
    data = os.urandom(300_000)
    received: list[bytes] = []

    def writer() -> None:
        send_stream(write_end, [data[:100_000], data[100_000:]], 2.0, "test")
        os.close(write_end)

    thread = threading.Thread(target=writer)
    thread.start()
    count = receive_stream(read_end, received.append, 2.0, "test", chunk=1 << 20)
    thread.join()
    os.close(read_end)
    assert count == len(data) and b"".join(received) == data


def test_a_closed_reading_end_is_epipe_with_the_count() -> None:
    read_end, write_end = new_pipe()
    os.close(read_end)
    with pytest.raises(PeerClosed, match=r"the reading end was closed after 0 bytes \(EPIPE\)"):
        send_stream(write_end, [b"x" * 10], 1.0, "device state SAVE")
    os.close(write_end)


def test_a_reader_that_stops_reading_is_a_timeout() -> None:
    read_end, write_end = new_pipe()
    with pytest.raises(PeerTimeout, match="device state SAVE after 65536 bytes: the reader took no data"):
        send_stream(write_end, [b"x" * (1 << 20)], 0.05, "device state SAVE")
    close_all([read_end, write_end])


def test_a_writer_that_neither_writes_nor_closes_is_a_timeout() -> None:
    read_end, write_end = new_pipe()
    os.write(write_end, b"abc")
    with pytest.raises(PeerTimeout, match=r"no data and no EOF for 0\.05 s after 3 bytes"):
        receive_stream(read_end, lambda data: None, 0.05, "device state LOAD")
    close_all([read_end, write_end])


def test_the_migration_stream_keeps_qemus_framing_and_can_be_corrupted_in_place() -> None:
    with MigrationStream() as stream:
        stream.append(b"hello")
        stream.append(b"world!")
        stream.end()
        assert list(stream.read_chunks()) == [b"hello", b"world!"]
        stream.corrupt(7)
        assert list(stream.read_chunks()) == [b"hello", b"wosld!"]
        assert (stream.size, stream.chunks) == (11, 2)
