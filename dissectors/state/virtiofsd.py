"""virtiofsd's device state: the ``PassthroughFs`` value it serializes with serde + postcard 1.x.

virtiofsd (since 1.11) writes its whole migration state into the SET_DEVICE_STATE_FD pipe as one
postcard value with no framing of its own (``src/passthrough/device_state/serialized.rs``). The
serde types, in field order (variant order fixes the enum indices)::

    PassthroughFs    = V1(PassthroughFsV1) | V2(PassthroughFsV2)          1.11 writes V1, ≥ 1.12 V2
    PassthroughFsV1  = { inodes: Vec<Inode>, next_inode: u64, handles: Vec<Handle>,
                         next_handle: u64, negotiated_opts: NegotiatedOpts }
    PassthroughFsV2  = { v1: PassthroughFsV1, mount_paths: HashMap<u64 mount id, String> }
    NegotiatedOpts   = { writeback, announce_submounts, posix_acl, sup_group_extension: bool }
    Inode            = { id: u64, refcount: u64, location: InodeLocation,
                         file_handle: Option<SerializableFileHandle> }
    InodeLocation    = RootNode | Path { parent: u64, filename: String } | Invalid
                       | FullPath { filename: String } | FileHandle { handle: SerializableFileHandle }
    SerializableFileHandle = { mnt_id: u64, handle_type: i32, handle: Vec<u8> }
    Handle           = { id: u64, inode: u64, source: HandleSource }
    HandleSource     = OpenInode { flags: i32 }

``Path`` names a file relative to its parent inode (find-paths mode), ``FullPath`` relative to the
shared directory, ``FileHandle`` is a ``name_to_handle_at`` handle (file-handles mode; the mount
id is the source's, translated by ``mount_paths``). An inode's optional ``file_handle`` is only
compared on the destination (``--migration-verify-handles``). ``OpenInode.flags`` are the
``open(2)`` flags the handle was opened with; they are named here with Linux's x86-64/generic
values, and handle bytes are read little-endian.

The stream is recognised when the first varint is 0 or 1 and the whole input parses as one value
with no byte left over (virtiofsd itself would ignore trailing bytes).
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dissectors.state.postcard import PostcardError, Reader
from dissectors.state.result import StateDecode, error_row, preview

NAME = "virtiofsd"
TITLE = "virtiofsd migration state (PassthroughFs, serde + postcard)"
VERSIONS = ("V1", "V2")
"""``PassthroughFs`` variants by index."""
VERSION_NOTES = {"V1": "written by virtiofsd 1.11", "V2": "written by virtiofsd 1.12 and later: adds mount paths"}
LOCATIONS = ("root", "path", "invalid", "full-path", "file-handle")
"""``InodeLocation`` variants by index: RootNode, Path, Invalid, FullPath, FileHandle."""
HANDLE_SOURCES = ("open-inode",)
"""``HandleSource`` variants by index."""
OPTION_NAMES = ("writeback", "announce_submounts", "posix_acl", "sup_group_extension")
"""``NegotiatedOpts`` fields in order."""

ACCESS_MODES = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR", 3: "O_ACCMODE"}
OPEN_FLAGS = (
    ("O_SYNC", 0o4010000),
    ("O_TMPFILE", 0o20200000),
    ("O_CREAT", 0o100),
    ("O_EXCL", 0o200),
    ("O_NOCTTY", 0o400),
    ("O_TRUNC", 0o1000),
    ("O_APPEND", 0o2000),
    ("O_NONBLOCK", 0o4000),
    ("O_DSYNC", 0o10000),
    ("O_ASYNC", 0o20000),
    ("O_DIRECT", 0o40000),
    ("O_LARGEFILE", 0o100000),
    ("O_DIRECTORY", 0o200000),
    ("O_NOFOLLOW", 0o400000),
    ("O_NOATIME", 0o1000000),
    ("O_CLOEXEC", 0o2000000),
    ("O_PATH", 0o10000000),
)
"""Linux open(2) flag bits (x86-64 and the generic ABI), composite flags first."""

FILEID_TYPES = {
    0x00: "FILEID_ROOT",
    0x01: "FILEID_INO32_GEN",
    0x02: "FILEID_INO32_GEN_PARENT",
    0x4D: "FILEID_BTRFS_WITHOUT_PARENT",
    0x4E: "FILEID_BTRFS_WITH_PARENT",
    0x4F: "FILEID_BTRFS_WITH_PARENT_ROOT",
    0x51: "FILEID_UDF_WITHOUT_PARENT",
    0x52: "FILEID_UDF_WITH_PARENT",
    0x61: "FILEID_NILFS_WITHOUT_PARENT",
    0x62: "FILEID_NILFS_WITH_PARENT",
    0x71: "FILEID_FAT_WITHOUT_PARENT",
    0x72: "FILEID_FAT_WITH_PARENT",
    0x81: "FILEID_INO64_GEN",
    0x82: "FILEID_INO64_GEN_PARENT",
    0x97: "FILEID_LUSTRE",
    0xFE: "FILEID_KERNFS",
    0xFF: "FILEID_INVALID",
}
"""Linux ``enum fid_type`` (include/linux/exportfs.h): what a file handle's type says about its bytes."""
FILEID_LAYOUTS = {
    0x01: (struct.Struct("<II"), ("ino", "generation")),
    0x02: (struct.Struct("<IIII"), ("ino", "generation", "parent_ino", "parent_generation")),
    0x81: (struct.Struct("<QI"), ("ino", "generation")),
    0x82: (struct.Struct("<QIQI"), ("ino", "generation", "parent_ino", "parent_generation")),
}
"""The generic handle layouts (ext4, xfs, ...) whose fields can be read: inode number and generation."""


def open_flags(flags: int) -> str:
    """``open(2)`` flags by name, e.g. ``O_WRONLY|O_APPEND|O_LARGEFILE``; unknown bits in hex."""
    bits = flags & 0xFFFFFFFF
    names = [ACCESS_MODES[bits & 3]]
    rest = bits & ~3
    for name, mask in OPEN_FLAGS:
        if rest & mask == mask:
            names.append(name)
            rest &= ~mask
    if rest:
        names.append(f"0x{rest:x}")
    return "|".join(names)


@dataclass
class FileHandle:
    """A ``SerializableFileHandle``: the source's mount id, the handle type and its opaque bytes."""

    mnt_id: int
    handle_type: int
    handle: bytes

    @property
    def type_name(self) -> str:
        return FILEID_TYPES.get(self.handle_type, f"type 0x{self.handle_type & 0xFFFFFFFF:x}")

    def handle_fields(self) -> dict[str, int]:
        """Inode number and generation for the generic handle types (empty for the others)."""
        layout = FILEID_LAYOUTS.get(self.handle_type)
        if layout is None or len(self.handle) != layout[0].size:
            return {}
        return dict(zip(layout[1], layout[0].unpack(self.handle), strict=True))

    def describe(self) -> str:
        known = " ".join(f"{k} {v}" for k, v in self.handle_fields().items())
        return f"mount {self.mnt_id} {self.type_name} {self.handle.hex()}" + (f" ({known})" if known else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "mnt_id": self.mnt_id,
            "handle_type": self.handle_type,
            "handle_type_name": self.type_name,
            "handle": self.handle.hex(),
            **self.handle_fields(),
        }


@dataclass
class Location:
    """An ``InodeLocation``: ``kind`` is one of LOCATIONS; the other fields as the variant has them."""

    kind: str
    parent: int | None = None
    filename: str | None = None
    handle: FileHandle | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.parent is not None:
            out["parent"] = self.parent
        if self.filename is not None:
            out["filename"] = self.filename
        if self.handle is not None:
            out["handle"] = self.handle.to_dict()
        return out


@dataclass
class Inode:
    id: int
    refcount: int
    location: Location
    file_handle: FileHandle | None
    """The handle the destination compares against (``--migration-verify-handles``), if sent."""
    offset: int
    length: int
    path: str | None = None
    """The path in the shared directory, rebuilt from the parent chain; None where it cannot be known."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "refcount": self.refcount,
            "location": self.location.to_dict(),
            "path": self.path,
            "file_handle": self.file_handle.to_dict() if self.file_handle else None,
            "offset": self.offset,
            "length": self.length,
        }


@dataclass
class Handle:
    """An open file of the guest: handle id, its inode and the flags to reopen it with."""

    id: int
    inode: int
    source: str
    flags: int
    offset: int
    length: int

    @property
    def flag_names(self) -> str:
        return open_flags(self.flags)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "inode": self.inode,
            "source": self.source,
            "flags": self.flags,
            "flag_names": self.flag_names,
            "offset": self.offset,
            "length": self.length,
        }


@dataclass
class NegotiatedOpts:
    writeback: bool
    announce_submounts: bool
    posix_acl: bool
    sup_group_extension: bool

    def enabled(self) -> list[str]:
        return [name for name in OPTION_NAMES if getattr(self, name)]

    def to_dict(self) -> dict[str, bool]:
        return {name: getattr(self, name) for name in OPTION_NAMES}


@dataclass
class VirtiofsdState:
    """What a ``PassthroughFs`` value holds; fields stay None / empty where decoding stopped before them."""

    version: str | None = None
    inodes: list[Inode] = field(default_factory=list)
    next_inode: int | None = None
    handles: list[Handle] = field(default_factory=list)
    next_handle: int | None = None
    negotiated_opts: NegotiatedOpts | None = None
    mount_paths: dict[int, str] | None = None
    """V2 only: the source's mount ids and their paths in the shared directory."""

    def to_dict(self) -> dict[str, Any]:
        paths = {i.id: i.path for i in self.inodes}
        return {
            "version": self.version,
            "inodes": [i.to_dict() for i in self.inodes],
            "next_inode": self.next_inode,
            "handles": [{**h.to_dict(), "path": paths.get(h.inode)} for h in self.handles],
            "next_handle": self.next_handle,
            "negotiated_opts": self.negotiated_opts.to_dict() if self.negotiated_opts else None,
            "mount_paths": (
                None if self.mount_paths is None else {str(k): v for k, v in sorted(self.mount_paths.items())}
            ),
        }


class _Parser:
    """Reads a ``PassthroughFs`` into ``state``; ``spans`` records where each single-valued item lies."""

    def __init__(self, data: bytes) -> None:
        self.reader = Reader(data)
        self.state = VirtiofsdState()
        self.spans: dict[str, tuple[int, int]] = {}
        self.values: dict[str, int] = {}
        self.mount_entries: list[tuple[int, int, int, str]] = []
        """(start, end, mount id, path) of each ``mount_paths`` entry, duplicates included."""

    def parse(self) -> None:
        r, state = self.reader, self.state
        index = self.spanned("version", r.variant)
        if index >= len(VERSIONS):
            raise PostcardError(f"variant {index}, expected 0 (V1) or 1 (V2)", 0, "version")
        state.version = VERSIONS[index]
        for i in range(self.spanned("inodes", r.count)):
            state.inodes.append(self.inode(i))
        state.next_inode = self.spanned("next_inode", r.u64)
        for i in range(self.spanned("handles", r.count)):
            state.handles.append(self.handle(i))
        state.next_handle = self.spanned("next_handle", r.u64)
        start = r.offset
        state.negotiated_opts = NegotiatedOpts(*[r.boolean(f"negotiated_opts.{name}") for name in OPTION_NAMES])
        self.spans["negotiated_opts"] = (start, r.offset)
        if state.version == "V2":
            count = self.spanned("mount_paths", r.count)
            state.mount_paths = {}
            for i in range(count):
                start = r.offset
                mnt_id = r.u64(f"mount_paths[{i}].mount_id")
                path = r.string(f"mount_paths[{i}].path")
                state.mount_paths[mnt_id] = path
                self.mount_entries.append((start, r.offset, mnt_id, path))

    def spanned(self, name: str, read: Callable[[str], int]) -> int:
        """Read one varint with ``read`` and remember where it lies and its value."""
        start = self.reader.offset
        value = read(name)
        self.spans[name] = (start, self.reader.offset)
        self.values[name] = value
        return value

    def file_handle(self, what: str) -> FileHandle:
        r = self.reader
        return FileHandle(r.u64(f"{what}.mnt_id"), r.i32(f"{what}.handle_type"), r.byte_vec(f"{what}.handle"))

    def location(self, what: str) -> Location:
        r = self.reader
        start = r.offset
        index = r.variant(what)
        if index >= len(LOCATIONS):
            raise PostcardError(f"variant {index}, expected 0 to {len(LOCATIONS) - 1}", start, what)
        kind = LOCATIONS[index]
        if kind == "path":
            return Location(kind, parent=r.u64(f"{what}.parent"), filename=r.string(f"{what}.filename"))
        if kind == "full-path":
            return Location(kind, filename=r.string(f"{what}.filename"))
        if kind == "file-handle":
            return Location(kind, handle=self.file_handle(f"{what}.handle"))
        return Location(kind)

    def inode(self, i: int) -> Inode:
        r = self.reader
        start = r.offset
        inode_id = r.u64(f"inodes[{i}].id")
        refcount = r.u64(f"inodes[{i}].refcount")
        location = self.location(f"inodes[{i}].location")
        verify = self.file_handle(f"inodes[{i}].file_handle") if r.option(f"inodes[{i}].file_handle") else None
        return Inode(inode_id, refcount, location, verify, start, r.offset - start)

    def handle(self, i: int) -> Handle:
        r = self.reader
        start = r.offset
        handle_id = r.u64(f"handles[{i}].id")
        inode = r.u64(f"handles[{i}].inode")
        source_at = r.offset
        index = r.variant(f"handles[{i}].source")
        if index >= len(HANDLE_SOURCES):
            raise PostcardError(f"variant {index}, expected 0 (OpenInode)", source_at, f"handles[{i}].source")
        flags = r.i32(f"handles[{i}].source.flags")
        return Handle(handle_id, inode, HANDLE_SOURCES[index], flags, start, r.offset - start)


def _join(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


def _anchor(location: Location) -> str | None:
    """The path of an inode that does not hang off a parent: the root, a full path, or unknown."""
    if location.kind == "root":
        return "/"
    if location.kind == "full-path" and location.filename is not None:
        return _join("", location.filename.lstrip("/"))
    return None


def _resolve_paths(state: VirtiofsdState, warnings: list[str]) -> None:
    """Set every inode's ``path`` by walking its parents up to the root (iteratively: trees may be deep)."""
    by_id: dict[int, Inode] = {}
    for inode in state.inodes:
        by_id.setdefault(inode.id, inode)
    paths: dict[int, str | None] = {}
    for start in state.inodes:
        chain: list[Inode] = []
        on_chain: set[int] = set()
        node: Inode | None = start
        base: str | None = None
        while node is not None:
            if node.id in paths:
                base = paths[node.id]
                break
            if node.location.kind != "path":
                base = paths[node.id] = _anchor(node.location)
                break
            if node.id in on_chain:
                warnings.append(f"inode {start.id}: its parent chain loops back to inode {node.id}")
                break
            chain.append(node)
            on_chain.add(node.id)
            parent = node.location.parent
            node = by_id.get(parent) if parent is not None else None
            if node is None:
                warnings.append(f"inode {chain[-1].id}: parent {parent} is not in the state")
        for member in reversed(chain):
            name = member.location.filename or ""
            base = None if base is None else _join(base, name)
            paths[member.id] = base
    for inode in state.inodes:
        inode.path = paths.get(inode.id)


def _check(state: VirtiofsdState, warnings: list[str]) -> None:
    """Consistency of a decoded state: what would make the destination fail or misbehave."""
    ids = [i.id for i in state.inodes]
    duplicates = sorted(inode_id for inode_id, n in Counter(ids).items() if n > 1)
    if duplicates:
        warnings.append(f"inode ids appear more than once: {', '.join(map(str, duplicates))}")
    roots = [i.id for i in state.inodes if i.location.kind == "root"]
    if state.inodes and len(roots) != 1:
        warnings.append(f"{len(roots)} root inodes, expected 1")
    warnings.extend(
        f"inode {i.id} is Invalid: the source could not find it (the destination applies --migration-on-error)"
        for i in state.inodes
        if i.location.kind == "invalid"
    )
    known = set(ids)
    warnings.extend(
        f"handle {h.id}: inode {h.inode} is not in the state" for h in state.handles if h.inode not in known
    )
    handle_ids = [h.id for h in state.handles]
    if len(set(handle_ids)) != len(handle_ids):
        warnings.append("handle ids appear more than once")
    if state.next_inode is not None and ids and state.next_inode <= max(ids):
        warnings.append(f"next_inode {state.next_inode} is not above the largest inode id {max(ids)}")
    if state.next_handle is not None and handle_ids and state.next_handle <= max(handle_ids):
        warnings.append(f"next_handle {state.next_handle} is not above the largest handle id {max(handle_ids)}")
    if state.mount_paths is not None:
        missing = sorted(
            {
                i.location.handle.mnt_id
                for i in state.inodes
                if i.location.handle is not None and i.location.handle.mnt_id not in state.mount_paths
            }
        )
        if missing:
            warnings.append(f"file handles on mount ids without a mount path: {', '.join(map(str, missing))}")


def _handle_columns(prefix: str, handle: FileHandle | None) -> dict[str, Any]:
    return {
        f"{prefix}mnt_id": handle.mnt_id if handle else None,
        f"{prefix}handle_type": handle.handle_type if handle else None,
        f"{prefix}handle": handle.handle.hex() if handle else None,
    }


def _rows(parser: _Parser) -> list[dict[str, Any]]:
    """One flat row per decoded item, in stream order."""
    state = parser.state
    rows: list[dict[str, Any]] = []

    def add(span: tuple[int, int], kind: str, **fields: Any) -> None:
        rows.append({"offset": span[0], "length": span[1] - span[0], "kind": kind, **fields})

    if state.version is not None:
        add(parser.spans["version"], "version", version=state.version)
    for name in ("next_inode", "next_handle"):
        if name in parser.spans:
            add(parser.spans[name], name, value=getattr(state, name))
    for name in ("inodes", "handles", "mount_paths"):
        if name in parser.spans:
            add(parser.spans[name], "count", field=name, value=parser.values[name])
    if state.negotiated_opts is not None:
        add(parser.spans["negotiated_opts"], "negotiated_opts", **state.negotiated_opts.to_dict())
    for i in state.inodes:
        location = i.location
        add(
            (i.offset, i.offset + i.length),
            "inode",
            id=i.id,
            refcount=i.refcount,
            location=location.kind,
            parent=location.parent,
            filename=location.filename,
            path=i.path,
            **_handle_columns("", location.handle),
            **_handle_columns("verify_", i.file_handle),
        )
    paths = {i.id: i.path for i in state.inodes}
    for h in state.handles:
        add(
            (h.offset, h.offset + h.length),
            "handle",
            id=h.id,
            inode=h.inode,
            source=h.source,
            flags=h.flags,
            flag_names=h.flag_names,
            path=paths.get(h.inode),
        )
    for start, end, mnt_id, path in parser.mount_entries:
        add((start, end), "mount_path", mnt_id=mnt_id, path=path)
    rows.sort(key=lambda row: row["offset"])
    return rows


def _summary(state: VirtiofsdState, parsed: bool) -> str:
    parts = [f"{len(state.inodes)} inodes", f"{len(state.handles)} open handles"]
    if state.mount_paths is not None:
        parts.append(f"{len(state.mount_paths)} mount paths")
    text = f"{state.version or 'no version'}: " + ", ".join(parts)
    return text if parsed else f"{text} decoded before the error"


def _progress(parser: _Parser) -> str:
    """How far the list that was being read got, e.g. `` (15 of 18 inodes decoded)``."""
    state = parser.state
    decoded = {"inodes": len(state.inodes), "handles": len(state.handles), "mount_paths": len(parser.mount_entries)}
    for name, count in decoded.items():
        declared = parser.values.get(name)
        if declared is not None and count < declared:
            return f" ({count} of {declared} {name} decoded)"
    return ""


def decode(stream: bytes) -> StateDecode:
    """Decode a whole state stream as virtiofsd's ``PassthroughFs``; never raises."""
    data = bytes(stream)
    parser = _Parser(data)
    error = None
    parsed = False
    try:
        parser.parse()
        parsed = True
        if not parser.reader.at_end():
            error = (
                f"{parser.reader.remaining} bytes after the end of the state at byte {parser.reader.offset} "
                "(virtiofsd would ignore them)"
            )
    except PostcardError as failure:
        error = str(failure) + _progress(parser)
    warnings: list[str] = []
    _resolve_paths(parser.state, warnings)
    _check(parser.state, warnings)
    if len(parser.mount_entries) > len(parser.state.mount_paths or {}):
        warnings.append("mount ids appear more than once in mount_paths (the last path counts)")
    rows = _rows(parser)
    if error is not None:
        decoded_until = max((row["offset"] + row["length"] for row in rows), default=0)
        rows.append(error_row(decoded_until, len(data), error))
    return StateDecode(
        format=NAME,
        title=TITLE,
        size=len(data),
        recognised=error is None,
        summary=_summary(parser.state, parsed),
        content=parser.state,
        rows=rows,
        error=error,
        warnings=warnings,
        preview=preview(data),
    )


def detect(stream: bytes) -> bool:
    """Whether the stream is a virtiofsd state: version 0 or 1 and one complete value, nothing left over."""
    return decode(stream).recognised
