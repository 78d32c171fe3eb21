"""Benchmark: the analysis behind `vutrace check` (and timeline, session, throughput, report) on big captures.

Uses the cached QEMU-like captures of benchmarks/tui_open.py (in-band notifications, back-end IOTLB
traffic, a state transfer per connection; built on first use) and prints, side by side for each size:

* load: ``vutrace.load`` (pcapng to DataFrame);
* rows: ``Capture.records``, the DataFrame rows as plain dicts that the analysis walks;
* check: ``checks.check`` (every rule, findings included);
* views: ``side_timeline`` + ``sessions`` + ``streams`` (timeline, session and throughput views);
* analysis RSS: what the rows and the analysis add to the process, on top of the loaded frame;
* vutrace check: the whole command in a fresh process (imports, load, rows, rules, text output), and its
  peak RSS.

The in-process steps run in a fresh child per capture, one after the other, so they do not share memory.

    .venv/bin/python benchmarks/analysis_speed.py [--records N ...] [--runs N] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tui_open import cached_capture

VUTRACE = Path(sys.executable).with_name("vutrace")
STEPS = """
import json, os, sys, time
from vutrace.loader import load
from vutrace.analysis import checks
from vutrace.analysis.frame import Capture
from vutrace.analysis.sessions import sessions
from vutrace.analysis.throughput import streams
from vutrace.analysis.timeline import side_timeline

def rss():
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def timed(step):
    started = time.perf_counter()
    result = step()
    return time.perf_counter() - started, result

load_s, frame = timed(lambda: load(sys.argv[1]))
loaded = rss()
capture = Capture(frame, "capture")
rows_s, records = timed(lambda: capture.records)
check_s, findings = timed(lambda: checks.check(capture))
views_s, _ = timed(lambda: (side_timeline(capture), sessions(capture), streams(capture)))
print(json.dumps({"records": len(records), "findings": len(findings), "load": load_s, "rows": rows_s,
                  "check": check_s, "views": views_s, "added": rss() - loaded}))
"""


def steps(capture: Path) -> dict[str, float]:
    """The in-process steps, timed in a fresh child."""
    done = subprocess.run(
        [sys.executable, "-c", STEPS, str(capture)], capture_output=True, text=True, check=True, timeout=900
    )
    return json.loads(done.stdout)


def command(capture: Path) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of `vutrace check FILE` in a fresh process, output discarded."""
    argv = [str(VUTRACE), "check", str(capture)]
    quiet = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_WRONLY, 0) for fd in (1, 2)]
    started = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=quiet)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} failed with status {os.waitstatus_to_exitcode(status)}")
    return seconds, usage.ru_maxrss * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=1, help="runs per capture: the fastest times are shown")
    parser.add_argument("--rebuild", action="store_true", help="write the cached captures again")
    args = parser.parse_args()
    captures = [cached_capture(n, args.rebuild) for n in args.records]
    print(
        f"{'records':>10} {'findings':>8} {'load':>7} {'rows':>7} {'check':>7} {'views':>7} {'analysis RSS':>12} "
        f"{'vutrace check':>13} {'peak RSS':>9}"
    )
    for capture in captures:
        runs = [steps(capture) for _ in range(args.runs)]
        inside = {key: min(run[key] for run in runs) for key in runs[0]}
        commands = [command(capture) for _ in range(args.runs)]
        seconds, peak = min(s for s, _ in commands), max(p for _, p in commands)
        print(
            f"{inside['records']:>10,} {inside['findings']:>8,} {inside['load']:>6.2f}s {inside['rows']:>6.2f}s "
            f"{inside['check']:>6.2f}s {inside['views']:>6.2f}s {inside['added'] / 2**20:>10.0f}MB "
            f"{seconds:>12.2f}s {peak / 2**20:>7.0f}MB"
        )
    print(
        "load, rows, check, views: in one fresh process per capture (rows: DataFrame to dicts; views: timeline, "
        "sessions, throughput); analysis RSS: added after loading; vutrace check: the command, imports included"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
