"""Benchmark: ``vutrace report`` on captures of growing size — generation time, page size, opening time.

For each size the capture is built once and cached under /tmp (the QEMU-like traffic of
``tui_open.py``: connections with negotiation, in-band notifications and IOTLB traffic on both
channels, each ending with a device-state transfer). Then, side by side in one run:

* ``vutrace report`` in a fresh process: wall time (imports and loading included), peak RSS, page size
  (and how much of it is plotly.js, which every report embeds once);
* ``vutrace check`` on the same capture, the analysis every report runs, for comparison;
* headless Chromium opening the page (``--dump-dom`` after the scripts ran): wall time, console
  errors, figures drawn. The first row, a 71-record sample, is the floor (Chromium's own start-up).

Targets for 1,000,000 records: a page of a few MB (<= 8 MiB), generated in well under a minute,
open in a few seconds with no JavaScript error.

    .venv/bin/python benchmarks/report_size.py [--records 10000 100000 1000000] [--rebuild]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tui_open import cached_capture

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "virtiofs-migration-source.pcapng"
VUTRACE = Path(sys.executable).with_name("vutrace")
TARGET_SIZE = 8 << 20
TARGET_SECONDS = 45.0
TARGET_OPEN = 10.0
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=10000",
)


def run_measured(argv: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of one child process, measured with wait4."""
    started = time.perf_counter()
    quiet = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_WRONLY, 0) for fd in (1, 2)]
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=quiet)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} failed with status {code}")
    return seconds, usage.ru_maxrss * 1024


def open_in_chromium(page: Path, profile: Path) -> dict[str, object] | None:
    chromium = shutil.which("chromium")
    if chromium is None:
        return None
    started = time.perf_counter()
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    seconds = time.perf_counter() - started
    errors = [line for line in result.stderr.splitlines() if "CONSOLE" in line and re.search(r"Uncaught|Error", line)]
    figures = len(re.findall(r'id="fig-[^"]+"', result.stdout))
    drawn = sum(
        'class="main-svg"' in block.split("<h2", 1)[0] for block in re.split(r'id="fig-[^"]+"', result.stdout)[1:]
    )
    return {"seconds": seconds, "errors": len(errors), "figures": figures, "drawn": drawn, "ok": not result.returncode}


def measure(capture: Path, folder: Path, name: str) -> dict[str, object]:
    from plotly.offline import get_plotlyjs

    page = folder / f"{name}.html"
    seconds, peak = run_measured([str(VUTRACE), "report", str(capture), "-o", str(page)])
    check_seconds, _ = run_measured([str(VUTRACE), "check", str(capture)])
    html = page.read_text(encoding="utf-8")
    listed = len(set(re.findall(r"<tr id='r0-(\d+)'", html)))
    total = re.search(r"<td class='num'>(\d+)</td><td class='num'>\d+</td>", html)
    return {
        "records": int(total.group(1)) if total else 0,
        "listed": listed,
        "size": page.stat().st_size,
        "plotly": len(get_plotlyjs().encode()),
        "seconds": seconds,
        "check": check_seconds,
        "peak": peak,
        "open": open_in_chromium(page, folder / f"profile-{name}"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--rebuild", action="store_true", help="write the cached captures again")
    args = parser.parse_args()
    captures = [("sample", SAMPLE)] + [(f"{n}", cached_capture(n, args.rebuild)) for n in args.records]
    rows = []
    with tempfile.TemporaryDirectory(prefix="vutrace-report-size-") as folder:
        for name, capture in captures:
            rows.append(measure(capture, Path(folder), name))
    print(
        f"{'records':>10} {'listed':>7} {'page':>9} {'plotly.js':>9} {'report':>8} {'check':>7} {'peak RSS':>9} "
        f"{'open':>7} {'JS errors':>9} {'figures drawn':>13}"
    )
    ok = True
    for row in rows:
        opened = row["open"]
        opening = (
            f"{opened['seconds']:>6.1f}s {opened['errors']:>9} {opened['drawn']:>6}/{opened['figures']:<6}"
            if isinstance(opened, dict)
            else "   (no chromium)"
        )
        print(
            f"{row['records']:>10,} {row['listed']:>7,} {row['size'] / 2**20:>7.1f}MB {row['plotly'] / 2**20:>7.1f}MB "
            f"{row['seconds']:>7.1f}s {row['check']:>6.1f}s {row['peak'] / 2**20:>7.0f}MB {opening}"
        )
        big = row is rows[-1]
        if big:
            ok = row["size"] <= TARGET_SIZE and row["seconds"] <= TARGET_SECONDS
            if isinstance(opened, dict):
                ok = ok and opened["errors"] == 0 and opened["drawn"] == opened["figures"]
                ok = ok and opened["seconds"] <= TARGET_OPEN
    print(
        "report: wall time of `vutrace report` (imports and loading included); check: `vutrace check` alone, the "
        "analysis the report runs too; open: headless Chromium loading the page and running its scripts"
    )
    print(
        f"targets for the largest: page <= {TARGET_SIZE >> 20} MiB, report <= {TARGET_SECONDS:.0f} s, "
        f"open <= {TARGET_OPEN:.0f} s without JS errors: {'met' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
