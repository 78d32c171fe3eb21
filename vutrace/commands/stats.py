"""``vutrace stats FILE``: counts per request and channel, bytes per channel, state transfers, latencies."""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from dissectors.spec import HEADER_SIZE
from vutrace.views.lines import format_duration
from vutrace.views.loading import add_capture_arguments, load_capture


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("stats", help="summary statistics of a capture")
    add_capture_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _, rows = load_capture(args.file, args.filter)
    sys.stdout.write(render(rows))
    return 0


def render(rows: pd.DataFrame) -> str:
    """The whole report as text."""
    sections = [_overview(rows)]
    if len(rows):
        sections += [_requests(rows), _bytes(rows), _state_transfers(rows), _latencies(rows)]
    return "\n\n".join(s for s in sections if s) + "\n"


def _overview(rows: pd.DataFrame) -> str:
    channel = rows["channel"].astype(str)
    messages = int(channel.isin(["main", "backend"]).sum())
    lines = [
        f"records: {len(rows)} ({messages} messages, {int((channel == 'state').sum())} state chunks, "
        f"{int((channel == 'event').sum())} events) on {rows['conn'].nunique()} connections"
    ]
    if len(rows):
        duration = int(rows["ts_ns"].max() - rows["ts_ns"].min())
        rate = f", {messages / (duration / 1e9):,.1f} messages/s" if duration else ""
        lines.append(f"duration: {duration / 1e9:.6f} s{rate}")
        is_message = channel.isin(["main", "backend"])
        errors = int(rows["error"].notna()[is_message].sum())
        warnings = int(rows["warning"].notna()[is_message].sum())
        failures = int((rows["request"].astype(str) == "error")[channel == "event"].sum())
        lines.append(f"decode errors: {errors}, warnings: {warnings}, error events: {failures}")
    return "\n".join(lines)


def _requests(rows: pd.DataFrame) -> str:
    messages = rows[rows["channel"].isin(["main", "backend"])]
    if messages.empty:
        return ""
    kind = messages["is_reply"].map({True: "replies", False: "requests"})
    table = pd.crosstab([messages["channel"].astype(str), messages["request"].astype(str)], kind)
    for column in ("requests", "replies"):
        if column not in table:
            table[column] = 0
    table = table[["requests", "replies"]].sort_values("requests", ascending=False, kind="stable")
    table.columns.name = None
    return "messages per channel and request:\n" + table.to_string()


def _bytes(rows: pd.DataFrame) -> str:
    channel = rows["channel"].astype(str)
    wire = (rows["size"].fillna(0).astype("int64") + HEADER_SIZE).where(channel.isin(["main", "backend"]), 0)
    state = rows["nbytes"].fillna(0).astype("int64")
    frame = pd.DataFrame({"channel": channel, "records": 1, "bytes": wire + state})
    table = frame[frame["channel"] != "event"].groupby("channel", sort=False).sum()
    return "bytes per channel (messages: header + payload; state: stream bytes):\n" + table.to_string()


def _state_transfers(rows: pd.DataFrame) -> str:
    chunks = rows[rows["channel"].astype(str) == "state"]
    if chunks.empty:
        return ""
    grouped = chunks.groupby(["conn", "stream"], sort=True)
    table = pd.DataFrame(
        {
            "sender": grouped["sender"].first().astype(str),
            "chunks": grouped.size(),
            "bytes": grouped["nbytes"].sum().astype("int64"),
            "duration": (grouped["ts_ns"].max() - grouped["ts_ns"].min()),
        }
    )
    seconds = table["duration"] / 1e9
    table["rate"] = [
        f"{b / s / 2**20:.1f} MiB/s" if s > 0 else "-" for b, s in zip(table["bytes"], seconds, strict=True)
    ]
    table["duration"] = table["duration"].map(format_duration)
    return "device-state transfers:\n" + table.to_string()


def _latencies(rows: pd.DataFrame) -> str:
    replies = rows[rows["latency_ns"].notna()]
    if replies.empty:
        return ""
    latency = replies["latency_ns"].astype("int64")
    grouped = latency.groupby([replies["channel"].astype(str), replies["request"].astype(str)], sort=True)
    table = pd.DataFrame(
        {
            "count": grouped.size(),
            "min": grouped.min().map(format_duration),
            "median": grouped.median().map(format_duration),
            "p95": grouped.quantile(0.95).map(format_duration),
            "max": grouped.max().map(format_duration),
        }
    )
    return "reply latency per request:\n" + table.to_string()
