"""``vutrace throughput``: the device-state streams: bytes over time, rates, chunk sizes, totals, SHA-256."""

from __future__ import annotations

import argparse

from vutrace.analysis import throughput as analysis
from vutrace.analysis.inputs import add_format_argument, clock, dump_json, offset, open_captures
from vutrace.analysis.sessions import human_bytes, human_duration
from vutrace.analysis.throughput import Comparison, Stream
from vutrace.errors import CommandError

SPARK = " ▁▂▃▄▅▆▇█"
PROVIDERS = {
    "front-end pipe": "the front-end's pipe (reply bit 8 set: the back-end returned no FD)",
    "back-end FD": "an FD the back-end returned in the SET_DEVICE_STATE_FD reply",
    "unknown": "unknown (no SET_DEVICE_STATE_FD reply in the capture)",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "throughput",
        help="device-state transfer: bytes over time, average and peak rate, chunk sizes, total and SHA-256",
        description="Show every device-state stream of a capture (SET_DEVICE_STATE_FD and the bytes the proxy "
        "relayed): time to first byte, duration, average and peak rate, chunk size distribution, who provided the "
        "channel, total bytes and SHA-256. Given the source and the destination capture, compare their totals.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="one capture, or the source and destination captures")
    add_format_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if len(args.files) > 2:
        raise CommandError("give one capture, or two (source and destination)")
    captures = open_captures(args.files)
    found = [analysis.streams(c) for c in captures]
    comparison = analysis.compare(found[0], found[1]) if len(found) == 2 else None
    if args.format == "json":
        payload: dict = {"streams": [s.to_dict() for group in found for s in group]}
        if comparison is not None:
            payload["comparison"] = comparison.to_dict()
        print(dump_json(payload))
        return 0
    starts = [s.start_ns for group in found for s in group if s.start_ns is not None]
    origin = min(starts) if starts else 0
    if starts:
        print(f"times are seconds since {clock(origin)}")
    for capture, group in zip(captures, found, strict=True):
        print()
        if not group:
            print(f"{capture.label}: no device-state transfer")
        for stream in group:
            print("\n".join(stream_lines(stream, origin)))
    if comparison is not None:
        print()
        print("\n".join(comparison_lines(comparison)))
    return 0


def human_rate(rate: float | None) -> str:
    return "-" if rate is None else human_bytes(rate) + "/s"


def stream_lines(s: Stream, origin: int) -> list[str]:
    number = f"stream {s.stream}" if s.stream > 0 else "no stream recorded"
    lines = [f"{s.side}: {number} (connection {s.conn}), {s.direction}"]
    if s.state_error:
        lines.append(f"  refused by the back-end: SET_DEVICE_STATE_FD error {s.state_error}")
    lines.append(f"  channel: {PROVIDERS.get(s.provider, s.provider)}")
    lines.append(f"  total: {s.total} bytes ({human_bytes(s.total)}) in {len(s.chunks)} chunk(s)")
    lines.append(
        f"  SET_DEVICE_STATE_FD {offset(s.request_ns, origin)}, first byte after "
        f"{human_duration(s.first_byte_ns) if s.first_byte_ns is not None else '-'}, end {offset(s.end_ns, origin)}"
        + (f" ({s.close_reason})" if s.close_reason else "")
        + f", duration {human_duration(s.duration_ns) if s.duration_ns is not None else '-'}"
    )
    width, bins = s.bins()
    lines.append(
        f"  rate: average {human_rate(s.average_rate)}, peak {human_rate(s.peak_rate)}"
        + (f" (bins of {human_duration(width)})" if bins else "")
    )
    sizes = s.chunk_sizes()
    if sizes["count"]:
        histogram = ", ".join(f"{k}: {v}" for k, v in sizes["histogram"].items())
        lines.append(f"  chunk sizes: min {sizes['min']}, median {sizes['median']}, max {sizes['max']}; {histogram}")
    if s.sha256:
        source = "recorded by the proxy" if s.sha256_source == "recorded" else "computed from the chunks"
        lines.append(f"  SHA-256: {s.sha256} ({source})")
    if bins:
        peak = max(b for _, b in bins) or 1
        spark = "".join(SPARK[round(b / peak * (len(SPARK) - 1))] for _, b in bins)
        lines.append(f"  bytes over time: |{spark}|")
    return lines


def comparison_lines(c: Comparison) -> list[str]:
    if c.source is None or c.destination is None:
        return ["comparison: needs a SAVE stream and a LOAD stream"]
    size = "same size" if c.same_size else "DIFFERENT sizes"
    digest = {True: "same SHA-256", False: "DIFFERENT SHA-256", None: "SHA-256 not comparable"}[c.same_hash]
    return [
        f"source {c.source.side} saved {c.source.total} bytes, destination {c.destination.side} loaded "
        f"{c.destination.total} bytes: {size}, {digest}"
    ]
