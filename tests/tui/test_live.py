"""Following a capture while a writer thread appends to it: new records appear, the list tails unless moved."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from textual.events import MouseScrollUp
from textual.pilot import Pilot
from tui_captures import source_records
from tui_pilot import drive

from vutrace.capture.model import CaptureRecord, RecordKind
from vutrace.capture.pcapng import CaptureWriter
from vutrace.loader import load
from vutrace.tui.app import VutraceApp
from vutrace.tui.sources import LiveCapture
from vutrace.tui.widgets.ladder import LadderList
from vutrace.tui.widgets.timeline import TimelineChart


class SlowWriter(threading.Thread):
    """Writes records to a capture one by one, each when the test lets it (``let``)."""

    def __init__(self, path: Path, records: list[CaptureRecord]) -> None:
        super().__init__(daemon=True)
        self.path, self.records = path, records
        self.allowed = threading.Semaphore(0)

    def let(self, count: int) -> None:
        for _ in range(count):
            self.allowed.release()

    def run(self) -> None:
        with CaptureWriter(self.path) as writer:
            for record in self.records:
                if not self.allowed.acquire(timeout=30):
                    return
                writer.write(record)


async def wait_for(pilot: Pilot, condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)


def shown(app: VutraceApp) -> int:
    return len(app.main.panes[0].list.view) if app.main.panes else 0


def test_records_written_after_the_start_appear_and_the_list_follows_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "live.pcapng"
    records = source_records()
    writer = SlowWriter(path, records)
    app = VutraceApp([path], live=True)

    async def script(pilot: Pilot) -> None:
        writer.start()
        writer.let(10)
        await wait_for(pilot, lambda: shown(app) == 10)
        listing = app.main.panes[0].list
        assert listing.current == (0, 9)
        writer.let(10)
        await wait_for(pilot, lambda: shown(app) == 20)
        assert listing.current == (0, 19)

    drive(app, script)


def test_the_list_stays_put_when_the_user_moved_away_and_tails_again_after_end(tmp_path: Path) -> None:
    path = tmp_path / "live.pcapng"
    writer = SlowWriter(path, source_records())
    app = VutraceApp([path], live=True)

    async def script(pilot: Pilot) -> None:
        writer.start()
        writer.let(12)
        await wait_for(pilot, lambda: shown(app) == 12)
        listing = app.main.panes[0].list
        await pilot.press("up", "up")
        assert listing.current == (0, 9) and not listing.tail
        writer.let(8)
        await wait_for(pilot, lambda: shown(app) == 20)
        assert listing.current == (0, 9)
        await pilot.press("end")
        assert listing.tail
        writer.let(5)
        await wait_for(pilot, lambda: shown(app) == 25)
        assert listing.current == (0, 24)

    drive(app, script)


def test_a_filter_applies_to_records_that_arrive_later(tmp_path: Path) -> None:
    path = tmp_path / "live.pcapng"
    records = source_records()
    writer = SlowWriter(path, records)
    app = VutraceApp([path], live=True)

    async def script(pilot: Pilot) -> None:
        writer.start()
        writer.let(5)
        await wait_for(pilot, lambda: len(app.parts[0]) == 5)
        await pilot.press("slash", *"is_reply", "enter")
        await wait_for(pilot, lambda: app.expression == "is_reply")
        writer.let(len(records) - 5)
        await wait_for(pilot, lambda: len(app.parts[0]) == len(records))
        await pilot.pause(0.3)
        listing = app.main.panes[0].list
        final = load(path)
        assert [row for _, row in (listing.view.locate(i) for i in range(len(listing.view)))] == (
            final.index[final["is_reply"]].tolist()
        )

    drive(app, script)


def test_replies_are_paired_across_polls_as_the_loader_pairs_them(tmp_path: Path) -> None:
    path = tmp_path / "live.pcapng"
    records = source_records()
    follower = LiveCapture(path)
    assert follower.poll() is None
    frames = []
    with CaptureWriter(path) as writer:
        for start in range(0, len(records), 7):
            for record in records[start : start + 7]:
                writer.write(record)
            frame = follower.poll()
            assert frame is not None
            frames.append(frame)
    follower.close()
    final = load(path)
    replies = [int(v) if v == v and v is not None else -1 for f in frames for v in f["reply_to"].astype("float")]
    latency = [int(v) if v == v and v is not None else -1 for f in frames for v in f["latency_ns"].astype("float")]
    assert replies == final["reply_to"].fillna(-1).astype(int).tolist()
    assert latency == final["latency_ns"].fillna(-1).astype(int).tolist()
    assert sum(r >= 0 for r in replies) > 10


def test_an_analysis_view_follows_a_live_capture(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("vutrace.tui.app.ANALYSIS_INTERVAL", 0.1)
    path = tmp_path / "live.pcapng"
    records = source_records()
    writer = SlowWriter(path, records)
    app = VutraceApp([path], live=True)

    def phases() -> set[str]:
        """The phases the timeline shows (none while it is being redrawn)."""
        charts = app.main.query(TimelineChart)
        return {p.name for side in charts.first().sides for p in side.phases} if charts else set()

    async def script(pilot: Pilot) -> None:
        writer.start()
        writer.let(20)
        await wait_for(pilot, lambda: len(app.parts[0]) == 20)
        await pilot.press("3")
        await wait_for(pilot, lambda: bool(phases()))
        assert phases() == {"negotiation", "setup"}
        writer.let(len(records) - 20)
        await wait_for(pilot, lambda: "state transfer" in phases())

    drive(app, script)


def test_the_ladder_grows_with_a_live_capture_and_folds_chunks_read_at_different_times(tmp_path: Path) -> None:
    path = tmp_path / "live.pcapng"
    records = source_records()
    first_chunk = next(i for i, r in enumerate(records) if r.kind is RecordKind.STATE_CHUNK)
    writer = SlowWriter(path, records)
    app = VutraceApp([path], live=True)

    async def script(pilot: Pilot) -> None:
        writer.start()
        writer.let(first_chunk + 1)
        await wait_for(pilot, lambda: len(app.parts[0]) == first_chunk + 1)
        await pilot.press("8")
        listing = app.main.query_one(LadderList)
        await wait_for(pilot, lambda: listing.view is not None and len(listing.view) == first_chunk + 1)
        assert listing.view.transfers[1].chunks == 1
        writer.let(len(records) - first_chunk - 1)
        await wait_for(pilot, lambda: listing.view.records == len(records))
        chunks = sum(r.kind is RecordKind.STATE_CHUNK for r in records)
        assert listing.view.transfers[1].chunks == chunks
        assert len(listing.view) == len(records) - chunks + 1

    drive(app, script)


def test_scrolling_back_with_the_mouse_stops_following(tmp_path: Path) -> None:
    path = tmp_path / "live.pcapng"
    writer = SlowWriter(path, source_records())
    app = VutraceApp([path], live=True)

    async def script(pilot: Pilot) -> None:
        writer.start()
        writer.let(30)
        await wait_for(pilot, lambda: shown(app) == 30)
        listing = app.main.panes[0].list
        assert listing.tail
        await pilot._post_mouse_events([MouseScrollUp], listing, offset=(10, 3))  # Pilot has no public scroll
        assert not listing.tail
        writer.let(5)
        await wait_for(pilot, lambda: shown(app) == 35)
        assert listing.current == (0, 29)

    drive(app, script)


def test_following_a_file_that_is_not_a_capture_says_so_once(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("this is not pcapng\n" * 20)
    app = VutraceApp([path], live=True)

    async def script(pilot: Pilot) -> None:
        await wait_for(pilot, lambda: bool(app._notifications))
        await pilot.pause(0.5)
        assert len([n for n in app._notifications if n.severity == "error"]) == 1

    drive(app, script)
