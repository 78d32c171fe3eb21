# Source of notebooks/03-analyze-your-capture.ipynb: edit here, then run `.venv/bin/python notebooks/build.py`.
# ruff: noqa: E402, B018 (imports where they are first needed; a bare expression displays a cell's result)

# %% [markdown]
# # Analyze your capture
#
# A template: point it at a capture written by `vutrace proxy` (and, optionally, a second one)
# and run all cells. It walks through vutrace's analysis API from Python: loading, filtering,
# one message in detail, sessions, the phase timeline, reply latencies, the device-state
# throughput, the conformance checks, and a diff of two captures. Every section also names the
# command that prints the same on a terminal.
#
# Set the two paths in the next cell. `CAPTURE2` is optional (`None` for one capture); give the
# source and destination captures of a migration to see both sides together, or two runs of
# the same set-up to see what differs. The cell is tagged `parameters`, so tools such as
# papermill can set them from the command line
# (`papermill 03-analyze-your-capture.ipynb out.ipynb -p CAPTURE my.pcapng`).
#
# To record a capture: `vutrace proxy --listen /tmp/fe.sock --connect BACKEND.sock -w my.pcapng`,
# then point the front-end (QEMU's `-chardev socket,path=/tmp/fe.sock`) at the proxy.

# %% tags=["parameters"]
CAPTURE = "../samples/virtiofs-migration-source.pcapng"
CAPTURE2 = "../samples/virtiofs-migration-destination.pcapng"

# %%
import warnings
from pathlib import Path

import pandas as pd
import plotly.express as px
from IPython.display import display

import vutrace
from dissectors.layers import dissect
from vutrace.analysis import checks, diff, sessions, throughput, timeline
from vutrace.analysis.frame import Capture
from vutrace.analysis.negotiation import protocol_names, virtio_names
from vutrace.filtering import apply_filter
from vutrace.report import figures, page

pd.set_option("display.max_columns", 30)
pd.set_option("display.max_rows", 80)
pd.set_option("display.width", 200)
pd.set_option("display.max_colwidth", 100)

# %% [markdown]
# ## 1. Load
#
# `vutrace.load(path)` reads a capture into a DataFrame, one row per record: messages (main
# socket and back-end channel), device-state chunks and proxy events. A capture whose last
# record was cut off (a proxy that was killed) loads with a warning. `Capture` wraps the frame
# with a label for the analysis functions.


# %%
def open_capture(path: str | Path) -> Capture:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = vutrace.load(path)
    for warning in caught:
        print(f"warning: {Path(path).name}: {warning.message}")
    return Capture(frame, Path(path).name, str(path))


first = open_capture(CAPTURE)
second = open_capture(CAPTURE2) if CAPTURE2 else None
captures = [c for c in (first, second) if c is not None]
if second is None:
    print("no second capture: CAPTURE2 is None, the sections that compare two captures are skipped")
df = first.df
origin = min(int(c.df["ts_ns"].min()) for c in captures)
for c in captures:
    span = (c.df["ts_ns"].max() - c.df["ts_ns"].min()) / 1e9
    connections = sorted(int(n) for n in c.df["conn"].unique() if n)
    print(f"{c.label}: {len(c.df)} records over {span:.3f} s, connections {connections}")

# %% [markdown]
# ## 2. Overview
#
# Records per channel and sender (`vutrace stats FILE` prints the same), then per message:

# %%
df.groupby(["channel", "sender"], observed=True).size().rename("records").to_frame()

# %%
messages = df[df["channel"].isin(["main", "backend"])]
per_message = (
    messages.groupby(["channel", "request", "is_reply"], observed=True)
    .agg(count=("ts_ns", "size"), with_fds=("nfds", lambda n: int((n > 0).sum())), errors=("error", "count"))
    .reset_index()
)
per_message

# %% [markdown]
# ## 3. Filter
#
# Any pandas expression over the columns works. `vutrace.filtering.apply_filter` takes the same
# expressions as `-Y` on the command line (`vutrace show FILE -Y "..."`). A few useful ones:

# %%
FILTERS = {
    "device-state messages": "request in ['SET_DEVICE_STATE_FD', 'CHECK_DEVICE_STATE']",
    "messages with FDs": "nfds > 0",
    "replies slower than 0.5 ms": "latency_ns > 500_000",
    "back-end channel": "channel == 'backend'",
    "decode errors or warnings": "error.notna() or warning.notna()",
    "proxy events": "channel == 'event'",
}
pd.DataFrame(
    {"filter": label, "expression": expression, "records": len(apply_filter(df, expression))}
    for label, expression in FILTERS.items()
)

# %%
COLUMNS = ["ts_ns", "conn", "channel", "sender", "request", "is_reply", "flags", "nfds", "fds", "latency_ns", "error"]
apply_filter(df, FILTERS["messages with FDs"])[COLUMNS]

# %% [markdown]
# ## 4. One message in detail
#
# The `raw` column holds each message's bytes as they crossed the socket; `dissect` shows them
# as a scapy field tree (`vutrace show FILE -V`). Here: the first `SET_DEVICE_STATE_FD`, or the
# first message if the capture has none. Change `row` to look at another record.

# %%
candidates = df[df["request"] == "SET_DEVICE_STATE_FD"]
row = int(candidates.index[0]) if len(candidates) else int(messages.index[0])
record = next(r for r in first.records if r["row"] == row)
print(f"row {row}:", figures.summary(record))
dissect(record["raw"], record["channel"]).show()

# %% [markdown]
# ## 5. Sessions
#
# One session per connection (a reconnecting front-end gives several): what was negotiated, the
# memory regions, every ring, the back-end channel (`vutrace session FILE`).

# %%
all_sessions = [s for c in captures for s in sessions.sessions(c)]
pd.DataFrame(
    {
        "capture": s.capture,
        "conn": s.conn,
        "duration (s)": s.duration_ns / 1e9,
        "messages": s.messages,
        "back-end channel messages": s.backend_messages,
        "state bytes": s.state_bytes,
        "ended by": s.ended_by,
        "virtio features acked": ", ".join(virtio_names(s.negotiated.acked_features or 0)),
        "protocol features in force": ", ".join(protocol_names(s.negotiated.protocol_features)),
    }
    for s in all_sessions
)

# %%
pd.DataFrame(
    {"capture": s.capture, "conn": s.conn, "region": region.describe()} for s in all_sessions for region in s.regions
)

# %%
pd.DataFrame(
    {
        "capture": s.capture,
        "conn": s.conn,
        "ring": ring.index,
        "size": ring.size,
        "base set": ring.base,
        "stopped at": ring.stopped_base,
        "state at the end": ring.state(),
        "kick": ring.kick,
        "call": ring.call,
        "dirty logging": ring.logging,
    }
    for s in all_sessions
    for ring in s.rings.values()
)

# %% [markdown]
# Every change of a session, in order (the first 40 of the first session):

# %%
if all_sessions:
    session_origin = all_sessions[0].start_ns
    changes = pd.DataFrame(
        {"ms": (c.ts_ns - session_origin) / 1e6, "row": c.row, "area": c.area, "change": c.text}
        for c in all_sessions[0].changes
    )
    display(changes.head(40))

# %% [markdown]
# ## 6. Timeline
#
# The phases of each connection (negotiation, set-up, running, dirty logging, suspension,
# state transfer, check, resume, teardown), with every record as a tick below them (`vutrace
# timeline FILE [FILE2]`). Hover for details; drag to zoom.

# %%
sides = [(c, timeline.side_timeline(c)) for c in captures]
pd.DataFrame(
    {
        "capture": c.label,
        "role": side.role,
        "phase": p.name,
        "conn": p.conn,
        "from (ms)": (p.start_ns - origin) / 1e6,
        "duration (ms)": p.duration_ns / 1e6,
        "rows": f"{p.first_row}-{p.last_row}",
        "detail": p.detail,
    }
    for c, side in sides
    for p in side.phases
)

# %%
figures.timeline_figure(sides, origin)

# %% [markdown]
# With a source and a destination capture, `timeline.migration` pairs them: the device's
# downtime (source suspension to destination running), the time spent saving and loading the
# state, and the ring positions handed over.

# %%
roles = {side.role for _, side in sides}
if {"source", "destination"} <= roles:
    paired = timeline.migration(*(side for _, side in sides))
    spans = {"save": paired.save_span, "load": paired.load_span}
    display(
        pd.Series(
            {
                "device downtime (ms)": paired.downtime_ns / 1e6 if paired.downtime_ns is not None else None,
                **{f"{name} (ms)": (span[1] - span[0]) / 1e6 for name, span in spans.items() if span is not None},
                "share of the downtime in save + load": paired.transfer_share,
            }
        ).to_frame("migration")
    )
    display(pd.DataFrame(vars(r) | {"match": r.match} for r in paired.ring_bases))
else:
    print(f"roles found: {sorted(map(str, roles))}; a migration needs a source and a destination capture")

# %% [markdown]
# The migration messages as a sequence diagram, per capture (the whole capture when it has no
# device-state transfer):

# %%
for c in captures:
    figures.ladder_figure(c, figures.ladder_rows(c), origin).show()

# %% [markdown]
# ## 7. Reply latency
#
# How long the back-end took to answer, per request type (`latency_ns`: from the request to its
# reply, as the proxy saw them):

# %%
answered = pd.concat(
    [c.df.loc[c.df["latency_ns"].notna(), ["request", "latency_ns"]].assign(capture=c.label) for c in captures]
)
answered["latency (µs)"] = answered["latency_ns"].astype(float) / 1e3
answered["request"] = answered["request"].astype(str)
answered.groupby(["capture", "request"])["latency (µs)"].describe()[["count", "min", "50%", "max"]]

# %%
px.strip(
    answered, x="latency (µs)", y="request", color="capture", log_x=True, title="Reply latency per request"
).update_layout(height=200 + 25 * answered["request"].nunique())

# %% [markdown]
# ## 8. Device-state throughput
#
# Each `SET_DEVICE_STATE_FD` transfer as a stream: direction, who provided the channel, bytes,
# chunks, rate, SHA-256 (`vutrace throughput FILE [FILE2]`).

# %%
streams = [s for c in captures for s in throughput.streams(c)]
if streams:
    display(
        pd.DataFrame(
            {
                "capture": s.side,
                "conn": s.conn,
                "direction": s.direction,
                "channel of the": s.provider,
                "error": s.state_error,
                "bytes": s.total,
                "chunks": len(s.chunks),
                "duration (ms)": (s.duration_ns or 0) / 1e6,
                "MiB/s": (s.average_rate or 0) / 2**20,
                "ended by": s.close_reason,
                "sha256": s.sha256,
            }
            for s in streams
        )
    )
    if second is not None:
        compared = throughput.compare(throughput.streams(first), throughput.streams(second))
        print("source and destination streams:", compared.to_dict())
else:
    print("no device-state transfer in these captures")

# %%
if streams:
    display(figures.throughput_figure(streams))

# %% [markdown]
# ## 9. Conformance checks
#
# The rule table (`vutrace check --rules`) run over the capture, or over both captures with the
# cross-capture rules (same state bytes, ring bases handed over). `docs/checks.md` explains each
# rule; `vutrace check FILE [FILE2]` prints the same.

# %%
findings = checks.check(*captures)
print(f"{len(findings)} findings, errors: {checks.has_errors(findings)}")
if findings:
    display(
        pd.DataFrame(
            {
                "rule": f.rule,
                "severity": f.severity.value,
                "message": f.message,
                "section": f.section,
                "records": ", ".join(f"{r.side} row {r.row}" for r in f.records),
            }
            for f in findings
        )
    )

# %%
pd.DataFrame(
    {"rule": rule.id, "severity": rule.severity.value, "checks": rule.title, "section": rule.section}
    for rule in checks.rules()
)

# %% [markdown]
# ## 10. Diff of two captures
#
# `diff.diff(a, b)` aligns the two captures message by message, connection by connection, and
# lists what is equal, changed (same message, other field values), missing (only in the first)
# or extra (only in the second) (`vutrace diff A B`). Timestamps and FD numbers never count;
# `ignore_addresses=True` also ignores the process addresses that change from run to run.
#
# With the default pair (source and destination of one migration) the diff shows how the two
# sides differ: the destination loads the state instead of saving it. To compare two runs of
# the same side, set `CAPTURE2 = "../samples/virtiofs-migration-file-handles-source.pcapng"`.

# %%
if second is not None:
    compared = diff.diff(first, second, ignore_addresses=True)
    print({kind: compared.count(kind) for kind in ("equal", "changed", "missing", "extra")})
    divergence = compared.first_divergence
    print("first divergence:", divergence.to_dict() if divergence else "none, the captures match")
    differences = pd.DataFrame(
        [
            (s.kind, s.message, s.a_row, s.b_row, "; ".join(f"{name}: {a!r} -> {b!r}" for name, a, b in s.changes))
            for s in compared.steps
            if s.kind != "equal"
        ],
        columns=["kind", "message", "row in first", "row in second", "changes"],
    )
    display(differences.astype({"row in first": "Int64", "row in second": "Int64"}).head(60))
else:
    print("no second capture: set CAPTURE2 to compare two captures")

# %% [markdown]
# ## 11. An HTML report to share
#
# `vutrace.report.page.render(captures)` returns one self-contained HTML page (plotly embedded,
# works offline) with the findings, the timeline, the ladder, the throughput, the sessions and
# the record list; `vutrace report FILE [FILE2] -o report.html` writes the same page. Here we only
# build it; write it with `Path("report.html").write_text(html)`.

# %%
html = page.render(captures)
print(f"report: {len(html) / 2**20:.1f} MiB of HTML")
