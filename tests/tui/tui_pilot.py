"""Driving the app in tests: wait until it is idle, stop cursors blinking."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from textual.pilot import Pilot
from textual.widgets import Input
from textual.worker import WorkerCancelled

from vutrace.tui.app import VutraceApp


async def settle(pilot: Pilot) -> None:
    """Wait until no worker runs and the screen has caught up with the messages they sent."""
    app = pilot.app
    for _ in range(400):
        await pilot.pause()
        running = [w for w in app.workers if w.is_running]
        if not running:
            await pilot.pause()
            if not [w for w in app.workers if w.is_running]:
                return
            continue
        try:
            await app.workers.wait_for_complete(running)
        except WorkerCancelled:
            continue
    raise AssertionError("the app did not settle")


def still(app: VutraceApp) -> None:
    """No blinking cursors (snapshots must not depend on the moment they are taken)."""
    for widget in app.main.query(Input):
        widget.cursor_blink = False


def drive(app: VutraceApp, script: Callable[[Pilot], Awaitable[None]], size: tuple[int, int] = (80, 24)) -> None:
    """Run ``app`` headless at ``size``, wait until it has loaded, then run ``script`` with its pilot."""

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            still(app)
            await script(pilot)

    asyncio.run(main())
