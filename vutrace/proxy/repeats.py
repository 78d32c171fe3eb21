"""Coalescing a run of identical failures into one counted event (a reconnecting peer facing a missing one).

A peer that reconnects as soon as it is closed (DPDK vhost ``client=1``) while the other side is
gone makes the proxy accept and fail again and again; recording each attempt would fill the
capture with accept, error and disconnect events.
"""

from __future__ import annotations

import time

from vutrace.capture.model import EventName
from vutrace.proxy.recorder import Recorder

REPEATS_SUMMARY_S = 60.0
"""While the same failure repeats, a summary event with the count is recorded at least this often."""


class RepeatedErrors:
    """The first failure of a run is recorded in full by the caller; the repeats become one ``error``
    event with ``repeated`` (the count), ``first_ns`` and ``last_ns``, when the run ends (another
    outcome, or the proxy stops) and at least every REPEATS_SUMMARY_S while it lasts."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.text: str | None = None
        self.count = 0
        self._first_ns = 0
        self._last_ns = 0
        self._summarized_at = 0.0

    def failed(self, text: str) -> bool:
        """Count a failure; True when it is new (the caller records it in full), False for a repeat."""
        if text != self.text:
            self.summarize()
            self.text = text
            self._summarized_at = time.monotonic()
            return True
        if not self.count:
            self._first_ns = time.time_ns()
        self.count += 1
        self._last_ns = time.time_ns()
        if time.monotonic() - self._summarized_at >= REPEATS_SUMMARY_S:
            self.summarize()
        return False

    def summarize(self) -> None:
        """Record one event for the repeats counted so far (if any)."""
        if self.count:
            self.recorder.event(
                EventName.ERROR,
                error=self.text,
                repeated=self.count,
                first_ns=self._first_ns,
                last_ns=self._last_ns,
            )
            self.count = 0
        self._summarized_at = time.monotonic()

    def succeeded(self) -> None:
        self.summarize()
        self.text = None
