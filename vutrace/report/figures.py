"""Plotly figures of a capture: phase timeline with message ticks, migration ladder, state throughput.

The builders take analysis results (``vutrace.analysis``) and the loaded captures and return
``plotly.graph_objects.Figure``s, so the HTML report and notebooks draw the same pictures.
Times on the x axes are milliseconds since ``origin`` (the earliest record of the captures shown).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from vutrace.analysis.frame import Capture, attrs_of, is_chunk, is_event, is_message
from vutrace.analysis.throughput import Stream
from vutrace.analysis.timeline import SideTimeline
from vutrace.report import selection
from vutrace.views.lines import FRAME_COLUMNS

PHASE_COLOURS = {
    "negotiation": "#9e9ac8",
    "setup": "#6baed6",
    "running": "#74c476",
    "dirty logging": "#fdae6b",
    "suspension": "#fb6a4a",
    "suspended": "#fcbba1",
    "state transfer": "#e6550d",
    "check": "#756bb1",
    "resume": "#31a354",
    "teardown": "#636363",
}
LANES = {
    "negotiation": "device",
    "setup": "device",
    "running": "device",
    "suspension": "device",
    "suspended": "device",
    "resume": "device",
    "teardown": "device",
    "dirty logging": "dirty logging",
    "state transfer": "device state",
    "check": "device state",
}
TICK_COLOURS = {
    "request": "#08519c",
    "reply": "#6baed6",
    "back-end channel": "#a63603",
    "state": "#e6550d",
    "event": "#525252",
}
SUMMARY_SKIP = FRAME_COLUMNS | {"row", "u64"}
"""Columns that are not payload fields (the summary shows them separately, or not at all)."""
LADDER_MAX = 400
RATE_BINS = 400
"""About how many bins the record-rate panel of a big capture has."""
CUMULATIVE_POINTS = 1000
"""Points of a stream's cumulative-bytes line at most (beyond: its value at the end of each of as many bins)."""
LIFELINES = {"back-end channel": 0, "front-end": 1, "back-end": 2, "state pipe": 3}
MS = 1e6


def kind_of(row: dict[str, Any]) -> str:
    """Which tick colour a record gets."""
    if is_event(row):
        return "event"
    if is_chunk(row):
        return "state"
    if row.get("channel") == "backend":
        return "back-end channel"
    return "reply" if row.get("is_reply") else "request"


def _value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:#x}" if value > 9 and name not in ("num", "vring", "num_regions", "queue_num") else str(value)
    if isinstance(value, bytes):
        return value[:16].hex() + ("…" if len(value) > 16 else "")
    if isinstance(value, tuple):
        return (
            "["
            + ", ".join(
                "(" + ", ".join(f"{v:#x}" for v in r) + ")" if isinstance(r, tuple) else str(r) for r in value[:4]
            )
            + ("…" if len(value) > 4 else "")
            + "]"
        )
    return str(value)


def summary(row: dict[str, Any]) -> str:
    """One line describing a record: name, direction, flags and decoded fields."""
    if is_event(row):
        attrs = attrs_of(row)
        detail = " ".join(f"{k}={v}" for k, v in attrs.items() if k != "sha256")
        return f"event {row.get('request')} {detail}".strip()
    if is_chunk(row):
        return f"state chunk stream {row.get('stream')} offset {row.get('offset')} +{row.get('nbytes')} bytes"
    text = f"{row.get('request')}{' reply' if row.get('is_reply') else ''} flags {row.get('flags', 0):#x}"
    fields = " ".join(f"{k}={_value(k, v)}" for k, v in row.items() if k not in SUMMARY_SKIP)
    if fields:
        text += " " + fields
    if row.get("nfds"):
        text += f" fds: {row.get('fds') or row['nfds']}"
    if row.get("error"):
        text += f" ERROR: {row['error']}"
    return text


def _hover(capture: Capture, row: dict[str, Any], origin: int) -> str:
    when = (int(row["ts_ns"]) - origin) / MS
    where = f"{capture.label} row {row['row']} conn {row.get('conn')} {row.get('channel')} from {row.get('sender')}"
    text = summary(row)
    if row.get("latency_ns") is not None:
        text += f"<br>reply after {int(row['latency_ns']) / 1e3:.1f} µs"
    return f"{where}<br>+{when:.3f} ms<br>{_wrap(text)}"


def _wrap(text: str, width: int = 90) -> str:
    words, lines, line = text.split(" "), [], ""
    for word in words:
        if line and len(line) + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "<br>".join(lines)


def timeline_figure(
    sides: list[tuple[Capture, SideTimeline]], origin: int, ticks: dict[str, list[dict[str, Any]]] | None = None
) -> go.Figure:
    """Phases per side as bars in three lanes (device, dirty logging, device state) and records as ticks.

    Every record is a tick up to ``selection.Limits.records`` per capture. A bigger capture gets ticks for
    the records the report lists (``selection.select``; ``ticks`` can name them per capture label
    instead) and a panel below the lanes with the rate of all its records by kind, so nothing is
    left out of the picture."""
    ticked = {
        capture.label: ticks[capture.label] if ticks and capture.label in ticks else _default_ticks(capture, side)
        for capture, side in sides
    }
    rated = [(capture, side) for capture, side in sides if len(ticked[capture.label]) < len(capture.df)]
    if rated:
        fig = make_subplots(
            rows=1 + len(rated),
            cols=1,
            shared_xaxes=True,
            vertical_spacing=0.08,
            row_heights=[60 * 4 * len(sides), *[160] * len(rated)],
            subplot_titles=["", *(f"{_side_name(s)}: all {len(c.df):,} records per second" for c, s in rated)],
        )
    else:
        fig = go.Figure()

    def add(trace: go.Scatter | go.Bar, panel: int = 1) -> None:
        if rated:
            fig.add_trace(trace, row=panel, col=1)
        else:
            fig.add_trace(trace)

    lanes: list[str] = []
    shown: set[str] = set()
    for capture, side in sides:
        name = _side_name(side)
        lanes.extend([*(f"{name}: {lane}" for lane in ("device", "dirty logging", "device state")), f"{name}: records"])
        for trace in _phase_bars(side, name, origin, shown):
            add(trace)
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in ticked[capture.label]:
            groups.setdefault(kind_of(row), []).append(row)
        for kind, rows in groups.items():
            add(
                go.Scatter(
                    x=[(int(r["ts_ns"]) - origin) / MS for r in rows],
                    y=[f"{name}: records"] * len(rows),
                    mode="markers",
                    marker={"symbol": "line-ns-open", "size": 16, "color": TICK_COLOURS[kind], "line": {"width": 1}},
                    name=kind,
                    legendgroup=f"tick-{kind}",
                    showlegend=f"tick-{kind}" not in shown,
                    hovertext=[_hover(capture, r, origin) for r in rows],
                    hoverinfo="text",
                )
            )
            shown.add(f"tick-{kind}")
    for panel, (capture, _) in enumerate(rated, start=2):
        width, rates = record_rates(capture.df, origin)
        for kind, (xs, ys) in rates.items():
            add(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines",
                    line={"shape": "hv", "color": TICK_COLOURS[kind], "width": 1},
                    name=kind,
                    legendgroup=f"tick-{kind}",
                    showlegend=f"tick-{kind}" not in shown,
                    hovertemplate=f"{kind}: %{{y:,.0f}}/s in the {width / MS:g} ms bin from +%{{x:.3f}} ms"
                    f"<extra>{capture.label}</extra>",
                ),
                panel,
            )
            shown.add(f"tick-{kind}")
        fig.update_yaxes(title_text="records/s", rangemode="tozero", row=panel, col=1)
    fig.update_layout(
        barmode="overlay",
        height=120 + 60 * len(lanes) + 200 * len(rated),
        margin={"l": 10, "r": 10, "t": 40, "b": 40},
        title="Phases and records",
        legend={"orientation": "h", "y": -0.2 if not rated else -0.08},
        hoverlabel={"align": "left"},
    )
    fig.update_yaxes(
        categoryorder="array", categoryarray=list(reversed(lanes)), **({"row": 1, "col": 1} if rated else {})
    )
    fig.update_xaxes(title_text="ms since the first record", **({"row": 1 + len(rated), "col": 1} if rated else {}))
    return fig


def _side_name(side: SideTimeline) -> str:
    return f"{side.label} ({side.role})" if side.role else side.label


def _default_ticks(capture: Capture, side: SideTimeline) -> list[dict[str, Any]]:
    """Every record of a capture within the limit, else the records ``selection.select`` lists."""
    records = capture.records
    if len(records) <= selection.Limits().records:
        return records
    listed = selection.select(capture, side, ladder=[r["row"] for r in ladder_rows(capture)]).rows
    return [r for r in records if r["row"] in listed]


def _phase_bars(side: SideTimeline, name: str, origin: int, shown: set[str]) -> list[go.Bar]:
    """One bar trace per phase name (all that phase's spans on the side), so thousands of connections stay a
    handful of traces."""
    spans: dict[str, list[Any]] = {}
    for phase in side.phases:
        spans.setdefault(phase.name, []).append(phase)
    bars = []
    for phase_name, phases in spans.items():
        bars.append(
            go.Bar(
                x=[max(p.duration_ns / MS, 0.001) for p in phases],
                base=[(p.start_ns - origin) / MS for p in phases],
                y=[f"{name}: {LANES.get(phase_name, 'device')}"] * len(phases),
                orientation="h",
                name=phase_name,
                legendgroup=phase_name,
                showlegend=phase_name not in shown,
                marker_color=PHASE_COLOURS.get(phase_name, "#bdbdbd"),
                hovertext=[
                    f"{p.name} (conn {p.conn})<br>+{(p.start_ns - origin) / MS:.3f} ms, {p.duration_ns / MS:.3f} ms"
                    f"<br>rows {p.first_row}-{p.last_row}{'<br>' + p.detail if p.detail else ''}"
                    for p in phases
                ],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
        shown.add(phase_name)
    return bars


def record_rates(df: pd.DataFrame, origin: int, bins: int = RATE_BINS) -> tuple[int, dict[str, tuple[Any, Any]]]:
    """(bin width in ns, {tick kind: (step edges in ms since ``origin``, records per second)}) over a capture:
    at most about ``bins`` bins of a round width (1, 2 or 5 times a power of ten ns) from its first record to
    its last. The first and last bins count over the part of them the capture covers (at least a tenth of a
    bin), so a capture that ends early in a bin does not look like its traffic stopped."""
    if not len(df):
        return 0, {}
    ts = df["ts_ns"].to_numpy(np.int64) - origin
    first, last = int(ts.min()), int(ts.max())
    width = _round_width(max(last, 1) / bins)
    index = ts // width - first // width
    count = int(index.max()) + 1
    edges = np.clip((np.arange(count + 1) + first // width) * width, first, last + 1)
    seconds = np.maximum(np.diff(edges), width / 10) / 1e9
    channel = df["channel"].astype(object).to_numpy()
    kinds = np.select(
        [channel == "event", channel == "state", channel == "backend", df["is_reply"].to_numpy(bool)],
        ["event", "state", "back-end channel", "reply"],
        "request",
    )
    rates = {}
    for kind in TICK_COLOURS:
        mask = kinds == kind
        if mask.any():
            per_second = np.bincount(index[mask], minlength=count) / seconds
            rates[kind] = (edges / MS, np.append(per_second, per_second[-1]))
    return width, rates


def _round_width(ns: float) -> int:
    """The smallest of 1, 2, 5 times a power of ten that is at least ``ns`` (and at least 1)."""
    power = 1
    while True:
        for step in (1, 2, 5):
            if step * power >= ns:
                return step * power
        power *= 10


def ladder_rows(capture: Capture) -> list[dict[str, Any]]:
    """The records a ladder shows: from the start of the migration (dirty logging, the stop or the transfer) on
    the connection that transferred device state, else the whole capture; at most LADDER_MAX."""
    records = capture.records
    transfers = [r for r in records if is_message(r) and r.get("request") == "SET_DEVICE_STATE_FD"]
    if transfers:
        conn = transfers[0].get("conn")
        records = [r for r in records if r.get("conn") in (conn, 0)]
        starts = [
            i
            for i, r in enumerate(records)
            if is_message(r)
            and not r.get("is_reply")
            and (
                r.get("request") in ("SET_LOG_BASE", "SET_DEVICE_STATE_FD", "GET_VRING_BASE")
                or (r.get("request") == "SET_VRING_ENABLE" and r.get("num") == 0)
            )
        ]
        records = records[min(starts) :]
    return records[:LADDER_MAX]


def _ends(row: dict[str, Any]) -> tuple[int, int]:
    """(from, to) lifelines of a record's arrow."""
    fe, be, channel, pipe = (LIFELINES[k] for k in ("front-end", "back-end", "back-end channel", "state pipe"))
    if is_chunk(row):
        return (be if row.get("sender") == "backend" else fe), pipe
    if row.get("channel") == "backend":
        return (channel, fe) if row.get("sender") == "backend" else (fe, channel)
    return (fe, be) if row.get("sender") == "frontend" else (be, fe)


def ladder_figure(capture: Capture, rows: list[dict[str, Any]], origin: int) -> go.Figure:
    """A sequence diagram: one arrow per message between the lifelines, top to bottom in capture order.

    Runs of state chunks of one stream are drawn as one arrow into the state pipe; proxy events are
    labelled on the right."""
    fig = go.Figure()
    steps: list[tuple[dict[str, Any], str, int]] = []
    for row in rows:
        if is_chunk(row) and steps and is_chunk(steps[-1][0]) and steps[-1][0].get("stream") == row.get("stream"):
            first, _, count = steps[-1]
            total = int(first.get("_total", first.get("nbytes") or 0)) + int(row.get("nbytes") or 0)
            steps[-1] = ({**first, "_total": total}, "", count + 1)
            continue
        steps.append((row, "", 1))
    xs: list[float | None] = []
    ys: list[float | None] = []
    heads_x, heads_y, heads_colour = [], [], []
    labels_x, labels_y, labels_text, hovers, colours = [], [], [], [], []
    times_y, times_text = [], []
    for i, (row, _, count) in enumerate(steps):
        kind = kind_of(row)
        colour = TICK_COLOURS[kind]
        times_y.append(i)
        times_text.append(f"+{(int(row['ts_ns']) - origin) / MS:.3f}")
        if is_event(row):
            labels_x.append(LIFELINES["state pipe"] + 0.6)
            labels_y.append(i)
            labels_text.append(f"⟂ {row.get('request')}")
            hovers.append(_hover(capture, row, origin))
            colours.append(colour)
            continue
        start, end = _ends(row)
        xs.extend([start, end, None])
        ys.extend([i, i, None])
        heads_x.append(end)
        heads_y.append(i)
        heads_colour.append(colour)
        if is_chunk(row):
            label = f"{count} chunk(s), {int(row.get('_total', row.get('nbytes') or 0))} bytes"
        else:
            label = str(row.get("request")) + (" ✓" if row.get("is_reply") else "")
            if row.get("nfds"):
                label += f" [{row['nfds']} fd]"
        labels_x.append((start + end) / 2)
        labels_y.append(i - 0.25)
        labels_text.append(label)
        hovers.append(_hover(capture, row, origin))
        colours.append(colour)
    for name, x in LIFELINES.items():
        fig.add_trace(
            go.Scatter(
                x=[x, x],
                y=[-1, len(steps)],
                mode="lines",
                line={"color": "#bdbdbd", "width": 2},
                hoverinfo="skip",
                showlegend=False,
            )
        )
        fig.add_annotation(x=x, y=-1.5, text=f"<b>{name}</b>", showarrow=False, yanchor="bottom")
    fig.add_trace(
        go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#6b6b6b", "width": 1}, hoverinfo="skip", showlegend=False)
    )
    fig.add_trace(
        go.Scatter(
            x=heads_x,
            y=heads_y,
            mode="markers",
            hoverinfo="skip",
            showlegend=False,
            marker={
                "symbol": "line-ns",
                "size": 10,
                "color": heads_colour,
                "line": {"width": 3, "color": heads_colour},
            },
        )
    )
    fig.add_trace(
        go.Scatter(
            x=labels_x,
            y=labels_y,
            mode="text",
            text=labels_text,
            textfont={"color": colours, "size": 11},
            hovertext=hovers,
            hoverinfo="text",
            showlegend=False,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[LIFELINES["back-end channel"] - 0.45] * len(times_y),
            y=times_y,
            mode="text",
            text=times_text,
            textfont={"color": "#737373", "size": 10},
            hoverinfo="skip",
            showlegend=False,
        )
    )
    fig.update_layout(
        title=f"{capture.label}: migration ladder ({len(steps)} steps, times in ms)",
        height=160 + 22 * len(steps),
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        xaxis={"visible": False, "range": [-0.75, LIFELINES["state pipe"] + 1.3]},
        yaxis={"visible": False, "autorange": "reversed"},
        hoverlabel={"align": "left"},
        plot_bgcolor="white",
    )
    return fig


def cumulative_bytes(stream: Stream, points: int = CUMULATIVE_POINTS) -> tuple[list[float], list[int]]:
    """(ms since the stream's start, bytes so far): one point per chunk, or, for a stream of more chunks than
    ``points``, one per bin (the total at the bin's end)."""
    start = stream.start_ns or 0
    xs, ys, total = [0.0], [0], 0
    if len(stream.chunks) <= points:
        for chunk in stream.chunks:
            total += chunk.length
            xs.append((chunk.ts_ns - start) / MS)
            ys.append(total)
        return xs, ys
    width, bins = stream.bins(points)
    for begin, length in bins:
        total += length
        xs.append((begin + width - start) / MS)
        ys.append(total)
    return xs, ys


def throughput_figure(streams: list[Stream]) -> go.Figure:
    """Per stream: cumulative bytes over time since its SET_DEVICE_STATE_FD (line) and bytes per bin (bars)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for stream in streams:
        start = stream.start_ns
        if start is None or not stream.chunks:
            continue
        name = f"{stream.side} {stream.direction} stream {stream.stream}"
        xs, ys = cumulative_bytes(stream)
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines+markers" if len(stream.chunks) <= CUMULATIVE_POINTS else "lines",
                line_shape="hv",
                name=f"{name}: cumulative bytes",
            ),
            secondary_y=False,
        )
        width, bins = stream.bins()
        fig.add_trace(
            go.Bar(
                x=[(b - start + width / 2) / MS for b, _ in bins],
                y=[n for _, n in bins],
                width=[width / MS] * len(bins),
                name=f"{name}: bytes per {width / 1e3:.0f} µs",
                opacity=0.4,
            ),
            secondary_y=True,
        )
    fig.update_layout(
        title="Device-state transfer",
        height=420,
        margin={"l": 10, "r": 10, "t": 40, "b": 40},
        legend={"orientation": "h", "y": -0.25},
        xaxis_title="ms since SET_DEVICE_STATE_FD",
    )
    fig.update_yaxes(title_text="bytes so far", secondary_y=False)
    fig.update_yaxes(title_text="bytes per bin", secondary_y=True)
    return fig
