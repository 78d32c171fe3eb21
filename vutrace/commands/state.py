"""``vutrace state``: what each device-state transfer of a capture carried, decoded by the back-end's format.

For virtiofsd: the stream version, every inode (id, refcount, location, the path rebuilt from the
parent chain, file handles), the open handles with their open(2) flags, the next ids, the options
negotiated at FUSE INIT and the mount paths. For ``vutrace sim``'s back-end: the header, the ring
table and whether the payload and the SHA-256 verify. Anything else: a hex preview.
"""

from __future__ import annotations

import argparse

from dissectors.state import UNKNOWN, StateDecode, virtiofsd
from dissectors.state.sim import SimState
from dissectors.state.virtiofsd import Inode, VirtiofsdState
from vutrace.analysis.inputs import add_format_argument, dump_json, open_capture
from vutrace.analysis.state_contents import StreamContents, contents

HEXDUMP_WIDTH = 16
LOCATION_TEXT = {"root": "root (the shared directory)", "invalid": "INVALID (not found on the source)"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "state",
        help="decode what each device-state transfer carried (virtiofsd inodes and open files, sim header)",
        description="Join the device-state chunks of every SET_DEVICE_STATE_FD transfer in a capture and decode "
        "them: the detected format (virtiofsd's migration state, vutrace sim's back-end state, or unknown), and "
        "its contents. Bytes the capture does not hold (hash-only recording, a cut-off file) are reported.",
    )
    parser.add_argument("file", metavar="FILE", help="capture file (pcapng written by vutrace proxy)")
    add_format_argument(parser)
    parser.add_argument("--raw", action="store_true", help="also show the stream's bytes (a hex dump; hex in JSON)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    capture = open_capture(args.file)
    found = contents(capture)
    if args.format == "json":
        print(dump_json({"file": capture.label, "streams": [item.to_dict(raw=args.raw) for item in found]}))
        return 0
    if not found:
        print(f"{capture.label}: no device-state stream")
        return 0
    blocks = [stream_lines(capture.label, item, raw=args.raw) for item in found]
    print("\n\n".join("\n".join(block) for block in blocks))
    return 0


def stream_lines(label: str, item: StreamContents, *, raw: bool = False) -> list[str]:
    s = item.stream
    number = f"stream {s.stream}" if s.stream > 0 else "no stream recorded"
    lines = [f"{label}: {number} (connection {s.conn}), {s.direction}, {item.size} bytes"]
    if s.state_error:
        lines.append(f"  refused by the back-end: SET_DEVICE_STATE_FD error {s.state_error}")
    lines.extend(f"  note: {note}" for note in item.notes)
    if item.decoded is None:
        lines.append("  no state bytes in the capture")
    else:
        lines.extend("  " + line for line in decode_lines(item.decoded))
    if raw and item.data:
        lines.append(f"  bytes ({len(item.data)}):")
        lines.extend("    " + line for line in hexdump(item.data))
    return lines


def decode_lines(decoded: StateDecode) -> list[str]:
    """The decode of one stream: format, content, error and warnings."""
    head = f"format: {decoded.format}"
    if decoded.format == UNKNOWN:
        lines = [f"{head}: {decoded.summary}: {decoded.preview}"]
        for attempt in decoded.attempts:
            lines.append(f"read as {attempt.format}, it fails: {attempt.error}")
            lines.extend("  " + line for line in content_lines(attempt))
        return lines
    lines = [f"{head} — {decoded.title}", f"summary: {decoded.summary}"]
    lines.extend(content_lines(decoded))
    if decoded.error:
        lines.append(f"error: {decoded.error}")
    lines.extend(f"warning: {warning}" for warning in decoded.warnings)
    return lines


def content_lines(decoded: StateDecode) -> list[str]:
    if isinstance(decoded.content, VirtiofsdState):
        return virtiofsd_lines(decoded.content)
    if isinstance(decoded.content, SimState):
        return sim_lines(decoded.content)
    return []


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], right: int) -> list[str]:
    """Columns sized to fit; the first ``right`` columns are numbers, aligned right."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    out = []
    for cells in (header, *rows):
        parts = [c.rjust(w) if i < right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        out.append("  " + "  ".join(parts).rstrip())
    return out


def printable(text: str | None) -> str:
    """A name from the guest, safe for a terminal: control characters escaped, ``-`` for none."""
    if text is None:
        return "-"
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _location(inode: Inode, mount_paths: dict[int, str] | None) -> str:
    location = inode.location
    if location.kind == "path":
        return f'parent {location.parent}, name "{printable(location.filename)}"'
    if location.kind == "full-path":
        return f'full path "{printable(location.filename)}"'
    if location.kind == "file-handle" and location.handle is not None:
        handle = location.handle
        mount = (mount_paths or {}).get(handle.mnt_id)
        where = f' (mount path "{printable(mount)}")' if mount is not None else ""
        return f"file handle {handle.describe()}{where}"
    return LOCATION_TEXT.get(location.kind, location.kind)


def _next_id(value: int | None) -> str:
    return "" if value is None else f", next id {value}"


def virtiofsd_lines(state: VirtiofsdState) -> list[str]:
    """The state's sections in stream order, as far as they were decoded."""
    if state.version is None:
        return []
    lines = [f"version: {state.version} ({virtiofsd.VERSION_NOTES[state.version]})"]
    lines.append(f"inodes: {len(state.inodes)}" + _next_id(state.next_inode))
    if state.inodes:
        rows = [
            (str(i.id), str(i.refcount), printable(i.path), _location(i, state.mount_paths))
            + ((f"verify handle {i.file_handle.describe()}",) if i.file_handle else ("",))
            for i in state.inodes
        ]
        lines.extend(_table(("id", "refs", "path", "location", ""), rows, right=2))
    if state.next_inode is None:
        return lines
    lines.append(f"open handles: {len(state.handles)}" + _next_id(state.next_handle))
    if state.handles:
        paths = {i.id: i.path for i in state.inodes}
        rows = [(str(h.id), str(h.inode), h.flag_names, printable(paths.get(h.inode))) for h in state.handles]
        lines.extend(_table(("id", "inode", "flags", "path"), rows, right=2))
    if state.negotiated_opts is not None:
        on = state.negotiated_opts.enabled()
        off = [name for name in virtiofsd.OPTION_NAMES if name not in on]
        lines.append(f"negotiated options: {', '.join(on) or 'none'}" + (f" (off: {', '.join(off)})" if off else ""))
    if state.mount_paths is not None:
        mounts = ", ".join(f'{mnt_id} -> "{printable(path)}"' for mnt_id, path in sorted(state.mount_paths.items()))
        lines.append(f"mount paths: {mounts or 'none'}")
    return lines


def sim_lines(state: SimState) -> list[str]:
    if state.version is None:
        return []
    lines = [
        f"header: version {state.version}, {state.ring_count} rings, seed {state.seed}, "
        f"payload {state.payload_size} bytes, config generation {state.config_generation}"
    ]
    if state.rings:
        rows = [
            (str(r.index), str(r.last_avail), str(r.used_idx), str(r.processed), "yes" if r.enabled else "no")
            for r in state.rings
        ]
        lines.extend(_table(("ring", "last_avail", "used_idx", "processed", "enabled"), rows, right=4))
    if state.payload_matches is not None:
        verdict = (
            "the seed's stream"
            if state.payload_matches
            else f"DIFFERS from the seed's stream at payload byte {state.first_difference}"
        )
        lines.append(f"payload: {state.payload_present} of {state.payload_size} bytes present, {verdict}")
    if state.digest is not None:
        verdict = "verifies" if state.digest_ok else f"does NOT verify (computed {state.computed_digest.hex()})"
        lines.append(f"SHA-256: {state.digest.hex()} {verdict}")
    elif state.expected_size is not None:
        lines.append(f"SHA-256: not in the stream (expected {state.expected_size} bytes in all)")
    return lines


def hexdump(data: bytes) -> list[str]:
    lines = []
    for start in range(0, len(data), HEXDUMP_WIDTH):
        part = data[start : start + HEXDUMP_WIDTH]
        left, right = part[:8].hex(" "), part[8:].hex(" ")
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in part)
        lines.append(f"{start:08x}  {left:<23}  {right:<23}  |{text}|")
    return lines
