"""Benchmark: the TUI on a 1,000,000-record capture, and a live capture being written.

Builds (once, cached under /tmp) a capture of QEMU-like traffic: connections with the start-up
negotiation, device start, steady in-band notifications and IOTLB traffic on both channels, and
a migration with a device-state transfer. Then, in fresh subprocesses, runs the app headless at
120×40 and measures:

* time to the first screen with records (from process start, imports included) and to the
  whole capture loaded;
* peak memory (RSS) of the process;
* End (scroll to the last record), PageDown, a filter typed and applied: time until drawn;
* the longest stall of the UI's event loop while the capture loads and while a filter runs
  (a 20 ms timer that should tick steadily);
* live: time from a record being written to it being in the list (a writer thread appends).

Targets: first screen <= 2 s, peak RSS <= 1 GiB, End/PageDown <= 0.1 s, live <= 0.5 s.

    .venv/bin/python benchmarks/tui_open.py [--records N] [--rebuild]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

CACHE = Path("/tmp/vutrace-bench")
TARGET_FIRST_SCREEN = 2.0
TARGET_RSS = 1 << 30
TARGET_KEY = 0.1
TARGET_LIVE = 0.5
SIZE = (120, 40)
FILTERS = ("request == 'SET_DEVICE_STATE_FD'", "channel == 'backend' and is_reply", "latency_ns > 20_000")


def build(path: Path, records: int) -> None:
    """Write about ``records`` records of QEMU-like traffic (repeated messages are encoded once)."""
    from dissectors.encode import encode
    from vutrace.capture.model import CaptureRecord, FdAction, FdInfo, FdKind, RecordChannel, RecordKind
    from vutrace.capture.pcapng import CaptureWriter

    rnd = random.Random(7)
    cache: dict[tuple, bytes] = {}
    eventfd = FdInfo(FdKind.EVENTFD, fd=30, target="anon_inode:[eventfd]")
    memfd = FdInfo(FdKind.MEMFD, fd=31, size=1 << 30, memfd_name="pc.ram", target="/memfd:pc.ram (deleted)")
    pipe = FdInfo(FdKind.PIPE, FdAction.SUBSTITUTED, fd=32, target="pipe:[7]")
    state = rnd.randbytes(64 << 10)
    ts = 1_800_000_000_000_000_000
    count = 0

    with CaptureWriter(path, socket_path="/run/vhost-user.sock") as writer:

        def put(kind, channel, sender, conn, **fields) -> None:
            nonlocal ts, count
            ts += rnd.randint(2_000, 30_000)
            writer.write(CaptureRecord(kind, ts, conn, channel, sender, **fields))
            count += 1

        def msg(conn, name, channel="main", sender="frontend", fds=(), **fields) -> None:
            key = (name, channel, sender, repr(sorted(fields.items())))
            data = cache.get(key)
            if data is None:
                reply = sender != ("frontend" if channel == "main" else "backend")
                data = cache[key] = encode(name, channel, reply=reply, **fields)
            put(RecordKind.MESSAGE, RecordChannel(channel), sender, conn, data=data, fds=fds, length=len(data))

        def event(conn, name, **attrs) -> None:
            put(RecordKind.EVENT, RecordChannel.EVENT, "proxy", conn, event=name, attrs=attrs)

        conn = 0
        while count < records:
            conn += 1
            event(conn, "accept", path="/tmp/front.sock")
            msg(conn, "GET_FEATURES")
            msg(conn, "GET_FEATURES", sender="backend", features=0x1_7400_0000)
            msg(conn, "GET_PROTOCOL_FEATURES")
            msg(conn, "GET_PROTOCOL_FEATURES", sender="backend", protocol_features=0x8_E62B)
            msg(conn, "SET_PROTOCOL_FEATURES", protocol_features=0x8_E62B)
            msg(conn, "SET_OWNER")
            msg(conn, "SET_FEATURES", features=0x1_5000_0000)
            msg(conn, "SET_MEM_TABLE", fds=(memfd,), need_reply=True, regions=[(0, 1 << 30, 0x7F00_0000_0000, 0)])
            msg(conn, "SET_MEM_TABLE", sender="backend", result=0)
            for vq in range(2):
                msg(conn, "SET_VRING_NUM", vring=vq, num=256)
                msg(conn, "SET_VRING_ADDR", vring=vq, desc_addr=0x10000 * (vq + 1))
                msg(conn, "SET_VRING_KICK", fds=(eventfd,), vring=vq)
                msg(conn, "SET_VRING_CALL", fds=(eventfd,), vring=vq)
            for _ in range(rnd.randint(2_000, 20_000)):
                vq = rnd.randrange(2)
                msg(conn, "VRING_KICK", need_reply=True, vring=vq, num=0)
                msg(conn, "VRING_KICK", sender="backend", result=0)
                msg(conn, "VRING_CALL", "backend", "backend", vring=vq, num=0)
                if rnd.random() < 0.1:
                    iova = rnd.randrange(1 << 16) << 12
                    msg(
                        conn,
                        "IOTLB_MSG",
                        "backend",
                        "backend",
                        need_reply=True,
                        iova=iova,
                        iotlb_size=4096,
                        perm=3,
                        iotlb_type=1,
                    )
                    msg(conn, "IOTLB_MSG", "backend", "frontend", result=0)
                if count >= records:
                    break
            for vq in range(2):
                msg(conn, "GET_VRING_BASE", vring=vq, num=0)
                msg(conn, "GET_VRING_BASE", sender="backend", vring=vq, num=rnd.randrange(1 << 16))
            msg(conn, "SET_DEVICE_STATE_FD", fds=(pipe,), direction=0, phase=0)
            msg(conn, "SET_DEVICE_STATE_FD", sender="backend", state_error=0, nofd=True)
            event(conn, "state_open", stream=1, direction="SAVE")
            for offset in range(0, len(state), 16 << 10):
                chunk = state[offset : offset + (16 << 10)]
                put(
                    RecordKind.STATE_CHUNK,
                    RecordChannel.STATE,
                    "backend",
                    conn,
                    data=chunk,
                    offset=offset,
                    length=len(chunk),
                    stream=1,
                )
            event(conn, "state_close", stream=1, bytes=len(state))
            msg(conn, "CHECK_DEVICE_STATE")
            msg(conn, "CHECK_DEVICE_STATE", sender="backend", result=0)
            event(conn, "disconnect", reason="eof")


def cached_capture(records: int, rebuild: bool) -> Path:
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"tui-{records}.pcapng"
    done = path.with_suffix(".done")
    if rebuild or not done.exists():
        started = time.perf_counter()
        build(path, records)
        done.write_text(str(records))
        print(f"built {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.0f} s")
    return path


def measure_open(path: str, started: float) -> dict:
    """In the child: open the app headless, time the first screen, keys and filters, watch the event loop."""
    import asyncio
    import resource

    from textual.worker import WorkerCancelled

    from vutrace.tui.app import VutraceApp
    from vutrace.tui.data import RecordView
    from vutrace.tui.widgets.filter_bar import FilterBar

    out: dict = {}
    ticks: list[float] = []

    def stall(since: float) -> float:
        later = [t for t in ticks if t >= since]
        gaps = [b - a for a, b in itertools.pairwise(later)]
        return max(gaps, default=0.0)

    async def idle(pilot) -> None:
        while [w for w in pilot.app.workers if w.is_running]:
            with contextlib.suppress(WorkerCancelled):
                await pilot.app.workers.wait_for_complete()
            await pilot.pause()
        await pilot.pause()

    async def drawn(app, action) -> float:
        """Seconds from a list action to the screen refreshed with its result."""
        await app.screen.wait_for_refresh()
        begin = time.perf_counter()
        action()
        await app.screen.wait_for_refresh()
        return time.perf_counter() - begin

    async def main() -> None:
        app = VutraceApp([path])
        async with app.run_test(size=SIZE) as pilot:
            app.set_interval(0.02, lambda: ticks.append(time.perf_counter()))
            while not app.main.panes or not len(app.main.panes[0].list.view):
                await asyncio.sleep(0.005)
            await app.screen.wait_for_refresh()
            out["first_screen"] = time.perf_counter() - started
            out["first_rows"] = len(app.main.panes[0].list.view)
            load_start = time.perf_counter()
            while not app.parts[0].complete or len(app.main.panes[0].list.view) < len(app.parts[0]):
                await asyncio.sleep(0.01)
            await app.screen.wait_for_refresh()
            out["loaded"] = time.perf_counter() - started
            out["rows"] = len(app.parts[0])
            out["load_stall"] = stall(load_start)
            listing = app.main.panes[0].list
            listing.focus()
            await pilot.pause()
            for name, action in (
                ("end", listing.action_last),
                ("pagedown", listing.action_page_down),
                ("pageup", listing.action_page_up),
                ("home", listing.action_first),
                ("end", listing.action_last),
            ):
                out[f"key_{name}"] = max(out.get(f"key_{name}", 0.0), await drawn(app, action))
            out["at_end"] = listing.cursor == len(listing.view) - 1
            bar = app.main.query_one(FilterBar)
            for number, expression in enumerate(FILTERS):
                checks = []
                for end in range(1, len(expression) + 1):
                    begin = time.perf_counter()
                    bar.show_check(expression[:end])
                    checks.append(time.perf_counter() - begin)
                begin = time.perf_counter()
                RecordView(app.parts, [0], expression)
                computed = time.perf_counter() - begin
                bar.input.value = expression
                begin = time.perf_counter()
                await pilot.press("slash", "enter")
                await idle(pilot)
                out[f"filter_{number}"] = {
                    "expression": expression,
                    "check_per_key": max(checks),
                    "computed": computed,
                    "applied": time.perf_counter() - begin,
                    "shown": len(app.main.panes[0].list.view),
                    "stall": stall(begin),
                }
            bar.input.value = ""
            await pilot.press("slash", "enter")
            await idle(pilot)
            out["end_after_filters"] = await drawn(app, app.main.panes[0].list.action_last)
        out["maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    asyncio.run(main())
    return out


def measure_live(folder: str, records: int = 40) -> dict:
    """In the child: a writer thread appends records one at a time; time until each is in the list."""
    import asyncio
    import threading

    from dissectors.encode import encode
    from vutrace.capture.model import CaptureRecord, RecordChannel, RecordKind
    from vutrace.capture.pcapng import CaptureWriter
    from vutrace.tui.app import VutraceApp

    path = Path(folder) / "live.pcapng"
    written: list[float] = []
    seen: list[float] = []
    go = threading.Semaphore(0)

    def writer() -> None:
        with CaptureWriter(path) as capture:
            for i in range(records):
                if not go.acquire(timeout=30):
                    return
                data = encode("VRING_KICK", vring=i % 2, num=0)
                capture.write(
                    CaptureRecord(RecordKind.MESSAGE, time.time_ns(), 1, RecordChannel.MAIN, "frontend", data)
                )
                written.append(time.perf_counter())

    async def main() -> None:
        app = VutraceApp([path], live=True)
        async with app.run_test(size=SIZE) as pilot:
            thread = threading.Thread(target=writer, daemon=True)
            thread.start()
            for i in range(records):
                await asyncio.sleep(random.uniform(0.05, 0.3))
                go.release()
                while not app.main.panes or len(app.main.panes[0].list.view) <= i:
                    await asyncio.sleep(0.002)
                seen.append(time.perf_counter())
            await pilot.pause()
            thread.join(5)

    asyncio.run(main())
    delays = sorted(s - w for s, w in zip(seen, written, strict=True))
    return {"median": delays[len(delays) // 2], "max": delays[-1], "records": len(delays)}


def child(function: str, *args: object) -> dict:
    """Run ``function(*args)`` in a fresh interpreter; measure_open also gets the clock at process start."""
    extra = ", started" if function == "measure_open" else ""
    code = (
        "import time; started = time.perf_counter(); import json, sys; sys.path.insert(0, 'benchmarks'); "
        f"import tui_open as b; print(json.dumps(b.{function}(*{args!r}{extra})))"
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, check=False
    )
    if result.returncode:
        raise SystemExit(f"{function} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def best(runs: list[dict]) -> dict:
    """Per measurement, the best of several runs: the least time, the most peak memory."""
    merged = dict(runs[0])
    for key, value in runs[0].items():
        values = [run[key] for run in runs]
        if key == "maxrss":
            merged[key] = max(values)
        elif isinstance(value, float):
            merged[key] = min(values)
        elif isinstance(value, dict):
            merged[key] = best(values)
    return merged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rebuild", action="store_true", help="write the cached capture again")
    parser.add_argument("--runs", type=int, default=3, help="report the best of this many runs (peak RSS: the worst)")
    args = parser.parse_args()
    path = cached_capture(args.records, args.rebuild)
    opened = best([child("measure_open", str(path)) for _ in range(args.runs)])
    print(
        f"capture: {opened['rows']:,} records, {path.stat().st_size / 2**20:.0f} MiB ({path}); best of {args.runs} runs"
    )
    print(
        f"first screen: {opened['first_screen']:.2f} s with the first {opened['first_rows']:,} records "
        f"(target <= {TARGET_FIRST_SCREEN:.0f} s; process start to rows drawn, imports included)"
    )
    print(
        f"whole capture loaded: {opened['loaded']:.2f} s; longest UI stall while loading {opened['load_stall']:.2f} s"
    )
    print(f"peak RSS: {opened['maxrss'] / 2**20:.0f} MiB (target <= 1024 MiB)")
    keys = ", ".join(f"{k[4:]} {v * 1000:.0f} ms" for k, v in opened.items() if k.startswith("key_"))
    print(
        f"keys on {opened['rows']:,} records (action to screen drawn): {keys}; on the last record: {opened['at_end']}"
    )
    for number in range(len(FILTERS)):
        f = opened[f"filter_{number}"]
        print(
            f"filter {f['expression']!r}: checked as typed in {f['check_per_key'] * 1000:.0f} ms/key at most, "
            f"computed in {f['computed']:.2f} s, on screen {f['applied']:.2f} s after Enter -> {f['shown']:,} records, "
            f"longest UI stall {f['stall']:.2f} s"
        )
    print(f"End after clearing the filter: {opened['end_after_filters'] * 1000:.0f} ms")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="vutrace-tui-live-") as folder:
        live = best([child("measure_live", folder) for _ in range(args.runs)])
    print(
        f"live: {live['records']} records written one at a time appeared after {live['median'] * 1000:.0f} ms "
        f"median, {live['max'] * 1000:.0f} ms max (target <= {TARGET_LIVE * 1000:.0f} ms)"
    )
    key_worst = max(v for k, v in opened.items() if k.startswith("key_"))
    ok = (
        opened["first_screen"] <= TARGET_FIRST_SCREEN
        and opened["maxrss"] <= TARGET_RSS
        and key_worst <= TARGET_KEY
        and live["max"] <= TARGET_LIVE
    )
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
