"""``vutrace proxy --live``: one line per record (the project's line format), printed off the forwarding path.

Records go through a queue to a printer thread, so a slow terminal never slows the relays or the
capture.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable
from typing import TextIO

from vutrace.capture.model import CaptureRecord
from vutrace.views.lines import format_record

Formatter = Callable[[CaptureRecord], str]


class LivePrinter:
    """Prints every record it is given on its own thread."""

    def __init__(self, out: TextIO = sys.stdout, formatter: Formatter | None = None) -> None:
        self.out = out
        self.format = formatter or format_record
        self._queue: queue.SimpleQueue[CaptureRecord | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="live-printer", daemon=True)
        self._thread.start()

    def __call__(self, record: CaptureRecord) -> None:
        self._queue.put(record)

    def close(self, timeout: float = 5.0) -> None:
        """Print what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (record := self._queue.get()) is not None:
            try:
                print(self.format(record), file=self.out, flush=True)
            except BrokenPipeError:
                return
