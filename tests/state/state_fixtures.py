"""Fixtures for the device-state dissector tests: a postcard writer, virtiofsd state builders, captures.

The writer is an independent implementation of the postcard rules (LEB128 varints, zigzag, tag
bytes, length prefixes), so hand-built states test the reader rather than mirror it. ``rewrite``
copies a real sample (``samples/``) with the real capture writer, with its state chunk split,
reordered, partly left out or recorded as hashes only.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

from vutrace.capture.model import CaptureRecord, RecordKind
from vutrace.capture.pcapng import CaptureWriter, read_records
from vutrace.loader import load

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
FIND_PATHS = ("virtiofs-migration-source.pcapng", "virtiofs-migration-destination.pcapng")
FILE_HANDLES = ("virtiofs-migration-file-handles-source.pcapng", "virtiofs-migration-file-handles-destination.pcapng")
NO_GUEST = ("virtiofs-migration-no-guest-source.pcapng", "virtiofs-migration-no-guest-destination.pcapng")


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def zigzag(value: int, bits: int = 32) -> bytes:
    return varint(((value << 1) ^ (value >> (bits - 1))) & ((1 << bits) - 1))


def text(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return varint(len(raw)) + raw


def seq(items: Iterable[bytes]) -> bytes:
    items = list(items)
    return varint(len(items)) + b"".join(items)


def file_handle(mnt_id: int, handle_type: int, handle: bytes) -> bytes:
    return varint(mnt_id) + zigzag(handle_type) + text(handle)


def root() -> bytes:
    return varint(0)


def path(parent: int, filename: str | bytes) -> bytes:
    return varint(1) + varint(parent) + text(filename)


def invalid() -> bytes:
    return varint(2)


def full_path(filename: str) -> bytes:
    return varint(3) + text(filename)


def by_handle(mnt_id: int, handle_type: int, handle: bytes) -> bytes:
    return varint(4) + file_handle(mnt_id, handle_type, handle)


def inode(inode_id: int, refcount: int, location: bytes, verify: bytes | None = None) -> bytes:
    tail = b"\x00" if verify is None else b"\x01" + verify
    return varint(inode_id) + varint(refcount) + location + tail


def handle(handle_id: int, inode_id: int, flags: int) -> bytes:
    return varint(handle_id) + varint(inode_id) + varint(0) + zigzag(flags)


def state(
    variant: int,
    inodes: Iterable[bytes],
    next_inode: int,
    handles: Iterable[bytes] = (),
    next_handle: int = 0,
    opts: tuple[bool, bool, bool, bool] = (False, False, False, False),
    mount_paths: dict[int, str] | None = None,
) -> bytes:
    body = seq(inodes) + varint(next_inode) + seq(handles) + varint(next_handle) + bytes(map(int, opts))
    if variant == 1:
        body += seq(varint(k) + text(v) for k, v in (mount_paths or {}).items())
    return varint(variant) + body


def sample(name: str) -> Path:
    return SAMPLES / name


def state_bytes(capture: Path) -> bytes:
    """The one state stream of a capture, its chunks joined by offset (the loader's documented columns)."""
    frame = load(capture)
    chunks = frame[frame["channel"] == "state"].sort_values("offset")
    return b"".join(chunks["raw"])


def rewrite(
    source: Path,
    target: Path,
    *,
    state_payload: str = "full",
    split: tuple[int, ...] = (),
    drop: tuple[int, ...] = (),
    reverse: bool = False,
) -> Path:
    """Copy a capture record by record with the real writer, cutting each state chunk at the ``split``
    offsets, leaving out the pieces numbered in ``drop`` and, with ``reverse``, writing them last first."""
    with CaptureWriter(target, state_payload=state_payload) as writer:
        for record in read_records(source):
            if record.kind is not RecordKind.STATE_CHUNK or not split:
                writer.write(record)
                continue
            edges = [0, *split, len(record.data)]
            pieces = [
                CaptureRecord(
                    record.kind,
                    record.ts_ns + i,
                    record.conn,
                    record.channel,
                    record.sender,
                    record.data[start:end],
                    offset=record.offset + start,
                    length=end - start,
                    stream=record.stream,
                )
                for i, (start, end) in enumerate(itertools.pairwise(edges))
                if i not in drop
            ]
            for piece in reversed(pieces) if reverse else pieces:
                writer.write(piece)
    return target
