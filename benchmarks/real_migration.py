"""The proxy's cost on a real QEMU + virtiofsd live migration: QEMU's own figures, direct versus proxied.

Each run is the interop scenario (``vutrace.interop.virtiofs_migration``): two virtiofsd, a
source and a destination QEMU (TCG, 512 MiB), a local live migration over a unix socket. With a
guest (the default) a Linux guest mounts the share, creates files, keeps two open and reads
through them on the destination; ``--no-guest`` migrates a never-started (``-S``) VM. Direct: each
QEMU connects straight to its virtiofsd. Proxied: each virtiofsd sits behind a ``vutrace proxy``
process writing a capture (``--state-payload full``), as a user would run it. Direct and proxied
runs alternate (ABBA order) so both see the same machine load.

Columns (milliseconds unless named otherwise):

* ``total``, ``downtime``, ``setup``: the source QEMU's ``query-migrate`` figures. QEMU's
  downtime ends when the source has sent everything; it leaves out the destination's load.
* ``stop>resume`` (guest only): source STOP event to destination RESUME event (QMP event
  timestamps; one host, one clock). QEMU sends RESUME just before it restarts the devices.
* ``stop>rings``  (guest only): source STOP event to the last message of the destination's
  vhost-user device start (QEMU trace): the pause the guest's file system really sees.
* ``42>43 src``, ``42>43 dst``: SET_DEVICE_STATE_FD written to CHECK_DEVICE_STATE reply read, as
  QEMU sees it (its ``vhost_user_write``/``vhost_user_read`` trace events, µs; tracing is on in both
  modes), on the source (SAVE) and the destination (LOAD).
* ``vu pause``: QEMU's time in vhost-user exchanges inside the pause (traces): the source's
  device stop (the messages after STOP), both device-state spans and the destination's device
  start (the messages after the check). The part of the pause the proxy can lengthen.
* ``cap src``, ``cap dst`` (proxied only): the same span as the proxy recorded it in the captures;
  without a proxy there is no capture, so it is not observable.
* ``RAM MiB``: RAM bytes the source sent (explains most of the spread of ``total``).

Each ratio (median proxied / median direct) comes with a 90% bootstrap interval: a difference is
"above the noise" when the whole interval lies above 1. Targets: total time ratio <= 1.05;
downtime not raised beyond the noise.

    python benchmarks/real_migration.py [--runs 5] [--no-guest] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import vutrace
from dissectors.spec import FLAG_REPLY, Channel, by_name
from vutrace import interop, realpeers

SET_DEVICE_STATE_FD = by_name(Channel.MAIN, "SET_DEVICE_STATE_FD").id
CHECK_DEVICE_STATE = by_name(Channel.MAIN, "CHECK_DEVICE_STATE").id
BURST_GAP_US = 50_000
"""Messages of one device start follow each other within microseconds; the next burst is QEMU quitting."""
TRACE_LINE = re.compile(r"^\d+@(\d+)\.(\d+):vhost_user_(read|write) req:(\d+) flags:0x([0-9a-fA-F]+)")

COLUMNS = (
    "total",
    "downtime",
    "setup",
    "stop>resume",
    "stop>rings",
    "42>43 src",
    "42>43 dst",
    "vu pause",
    "cap src",
    "cap dst",
    "RAM MiB",
)
RATIO_TARGETS = {"total": 1.05}
MIN_RUNS_FOR_INTERVAL = 3


@dataclass(frozen=True)
class TraceLine:
    ts_us: int
    way: str
    request: int
    flags: int


@dataclass
class Run:
    number: int
    mode: str
    figures: dict[str, float] = field(default_factory=dict)
    """Per column; a column missing from a run was not observable in that run."""


def read_trace(trace: Path) -> list[TraceLine]:
    lines = []
    for text in trace.read_text(errors="replace").splitlines():
        match = TRACE_LINE.match(text)
        if match:
            seconds, micros, way, request, flags = match.groups()
            lines.append(TraceLine(int(seconds) * 1_000_000 + int(micros), way, int(request), int(flags, 16)))
    return lines


def state_span(lines: list[TraceLine]) -> tuple[int, int] | None:
    """(µs) QEMU's SET_DEVICE_STATE_FD write and its read of the CHECK_DEVICE_STATE reply."""
    sent = next((x.ts_us for x in lines if x.way == "write" and x.request == SET_DEVICE_STATE_FD), None)
    if sent is None:
        return None
    checked = next(
        (
            x.ts_us
            for x in lines
            if x.way == "read" and x.request == CHECK_DEVICE_STATE and x.flags & FLAG_REPLY and x.ts_us >= sent
        ),
        None,
    )
    return None if checked is None else (sent, checked)


def burst(lines: list[TraceLine], after_us: int, before_us: int | None = None) -> tuple[int, int] | None:
    """(µs) first and last message of the run of messages that follows ``after_us`` (and ends before
    ``before_us``): the source's device stop after STOP, the destination's device start after the check."""
    first = last = None
    for line in lines:
        if line.ts_us <= after_us:
            continue
        if (before_us is not None and line.ts_us >= before_us) or (last and line.ts_us - last > BURST_GAP_US):
            break
        first, last = first or line.ts_us, line.ts_us
    return None if first is None else (first, last)


def event_times_us(events: list[dict], name: str) -> list[int]:
    return [
        e["timestamp"]["seconds"] * 1_000_000 + e["timestamp"]["microseconds"] for e in events if e["event"] == name
    ]


def capture_span(capture: Path) -> float | None:
    """ms from SET_DEVICE_STATE_FD to the CHECK_DEVICE_STATE reply, as the proxy recorded them."""
    df = vutrace.load(capture)
    main = df[df.channel == "main"]
    sent = main[(main.request == "SET_DEVICE_STATE_FD") & ~main.is_reply].ts_ns
    checked = main[(main.request == "CHECK_DEVICE_STATE") & main.is_reply].ts_ns
    if sent.empty or checked.empty:
        return None
    return (int(checked.iloc[0]) - int(sent.iloc[0])) / 1e6


def figures_of(outcome: interop.MigrationOutcome) -> dict[str, float]:
    info = outcome.query_migrate
    figures = {
        column: float(info[key])
        for column, key in (("total", "total-time"), ("downtime", "downtime"), ("setup", "setup-time"))
        if key in info
    }
    figures["RAM MiB"] = info.get("ram", {}).get("transferred", 0) / 2**20
    traces = {side: read_trace(path) for side, path in outcome.qemu_traces.items()}
    spans = {side: state_span(lines) for side, lines in traces.items()}
    for side, span in spans.items():
        if span:
            figures[f"42>43 {side}"] = (span[1] - span[0]) / 1000
    stops = event_times_us(outcome.qmp_events.get("src", []), "STOP")
    resumes = event_times_us(outcome.qmp_events.get("dst", []), "RESUME")
    stopping = starting = None
    if stops and spans.get("src"):
        stopping = burst(traces["src"], stops[-1], before_us=spans["src"][0])
    if resumes and spans.get("dst"):
        starting = burst(traces["dst"], spans["dst"][1])
    if stops and resumes:
        figures["stop>resume"] = (resumes[0] - stops[-1]) / 1000
        if starting:
            figures["stop>rings"] = (starting[1] - stops[-1]) / 1000
    if spans.get("src") and spans.get("dst"):
        parts = [span for span in (stopping, spans["src"], spans["dst"], starting) if span]
        figures["vu pause"] = sum(end - begin for begin, end in parts) / 1000
    for side, capture in (("src", outcome.source_capture), ("dst", outcome.destination_capture)):
        span = capture_span(capture) if capture else None
        if span is not None:
            figures[f"cap {side}"] = span
    return figures


def one_run(peers: realpeers.PeerPaths, number: int, mode: str, guest: bool, keep: Path | None) -> Run:
    workdir = Path(tempfile.mkdtemp(prefix="vrm-"))  # short: unix socket paths < 108 bytes
    procs = interop.Processes(workdir)
    try:
        outcome = interop.virtiofs_migration(
            peers, procs, guest=guest, proxied=mode == "proxied", trace_vhost_user=True
        )
    finally:
        procs.stop_all()
    if guest and "vutrace-guest: read content-1" not in outcome.destination_console:
        raise SystemExit(f"run {number} {mode}: the destination guest did not read its file (see {workdir})")
    run = Run(number, mode, figures_of(outcome))
    if keep:
        (workdir / "qmp-events.json").write_text(json.dumps(outcome.qmp_events, indent=1))
        (workdir / "query-migrate.json").write_text(json.dumps(outcome.query_migrate, indent=1))
        shutil.copytree(workdir, keep / f"run{number}-{mode}", ignore=shutil.ignore_patterns("*.sock", "*.qmp"))
    shutil.rmtree(workdir, ignore_errors=True)
    return run


def first_line(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return (result.stdout or result.stderr).strip().splitlines()[0]


def machine_facts(peers: realpeers.PeerPaths) -> list[str]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return [
        f"machine: {os.cpu_count()} CPUs ({cpu}), {memory_kib / 2**20:.0f} GiB, kernel {platform.release()}, "
        f"Python {platform.python_version()}",
        f"peers: {first_line([peers.qemu, '--version'])}; {first_line([peers.virtiofsd, '--version'])}",
    ]


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.2f}"


def print_runs(runs: list[Run], columns: list[str]) -> None:
    print(f"{'run':>3} {'mode':8}" + "".join(f"{c:>12}" for c in columns))
    for run in runs:
        print(f"{run.number:>3} {run.mode:8}" + "".join(f"{fmt(run.figures.get(c)):>12}" for c in columns))


def values(runs: list[Run], mode: str, column: str) -> list[float]:
    return [r.figures[column] for r in runs if r.mode == mode and column in r.figures]


def ratio_interval(direct: list[float], proxied: list[float], rounds: int = 2000) -> tuple[float, float] | None:
    """90% bootstrap interval of median(proxied) / median(direct): how far noise alone moves the ratio."""
    if min(len(direct), len(proxied)) < MIN_RUNS_FOR_INTERVAL:
        return None
    rng = random.Random(1)
    ratios = []
    for _ in range(rounds):
        below = statistics.median(rng.choices(direct, k=len(direct)))
        if below > 0:
            ratios.append(statistics.median(rng.choices(proxied, k=len(proxied))) / below)
    if len(ratios) < rounds // 2:
        return None
    ratios.sort()
    return ratios[len(ratios) // 20], ratios[len(ratios) * 19 // 20]


def spread(got: list[float]) -> str:
    return f"{fmt(statistics.median(got))} [{fmt(min(got))}..{fmt(max(got))}]"


def print_summary(runs: list[Run], columns: list[str]) -> dict[str, tuple[float, tuple[float, float] | None]]:
    """Median [min..max] per mode and column, and the ratio of the medians with its noise interval."""
    print(f"\n{'':12}{'direct median [min..max]':>28}{'proxied median [min..max]':>28}{'ratio [90% CI]':>22}")
    ratios = {}
    for column in columns:
        direct, proxied = values(runs, "direct", column), values(runs, "proxied", column)
        ratio = ""
        if direct and proxied and statistics.median(direct) > 0:
            ratios[column] = statistics.median(proxied) / statistics.median(direct), ratio_interval(direct, proxied)
            value, interval = ratios[column]
            ratio = f"{value:.2f}" + (f" [{interval[0]:.2f}..{interval[1]:.2f}]" if interval else "")
        cells = [spread(got) if got else "not observable" for got in (direct, proxied)]
        print(f"{column:12}{cells[0]:>28}{cells[1]:>28}{ratio:>22}")
    return ratios


def print_verdicts(runs: list[Run], ratios: dict[str, tuple[float, tuple[float, float] | None]]) -> None:
    """Per key figure: the medians' difference and whether it stands out of the noise; the total-time target."""
    print()
    for column in ("total", "downtime", "stop>rings", "vu pause", "42>43 src", "42>43 dst"):
        if column not in ratios:
            continue
        value, interval = ratios[column]
        direct, proxied = values(runs, "direct", column), values(runs, "proxied", column)
        added = statistics.median(proxied) - statistics.median(direct)
        if interval is None:
            noise = f"noise not estimated (fewer than {MIN_RUNS_FOR_INTERVAL} runs per mode)"
        elif interval[0] > 1.0:
            noise = "above the noise (the whole 90% interval > 1)"
        else:
            noise = "within the noise (90% interval holds 1)"
        line = f"{column:12} proxied - direct {added:+9.2f} ms (medians), ratio {value:.3f}: {noise}"
        if column in RATIO_TARGETS:
            target = RATIO_TARGETS[column]
            line += f"; target <= {target}: {'met' if value <= target else 'NOT met'} by the medians"
        print(line)
    print("42>43 as captured (cap src/dst): proxied runs only (without the proxy there is no capture)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per mode (default 5)")
    parser.add_argument("--no-guest", action="store_true", help="migrate a VM that never started (-S, no kernel)")
    parser.add_argument("--keep", type=Path, help="copy each run's logs, traces, QMP events and captures here")
    args = parser.parse_args()
    peers = realpeers.find_peers()
    if peers is None:
        raise SystemExit("real peers not installed: run scripts/install-peers (as root)")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    guest = not args.no_guest
    print(*machine_facts(peers), sep="\n")
    print(f"guest: {'Linux, files created and two kept open' if guest else 'none (-S)'}; runs per mode: {args.runs}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    started = time.monotonic()
    runs = []
    for number in range(1, args.runs + 1):
        for mode in ("direct", "proxied") if number % 2 else ("proxied", "direct"):
            runs.append(one_run(peers, number, mode, guest, args.keep))
            print(f"  run {number} {mode}: " + ", ".join(f"{k} {fmt(v)}" for k, v in runs[-1].figures.items()))
    print(f"load average after: {os.getloadavg()[0]:.2f}; {time.monotonic() - started:.0f} s\n")
    columns = [c for c in COLUMNS if any(c in r.figures for r in runs)]
    print_runs(runs, columns)
    print_verdicts(runs, print_summary(runs, columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
