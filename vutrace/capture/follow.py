"""Follow a capture file while the proxy writes it: hand out each record once it is complete.

``CaptureFollower.poll()`` never blocks (the TUI calls it from a timer); ``follow_records``
wraps it in a generator that sleeps between polls until told to stop.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from vutrace.capture import blocks
from vutrace.capture.blocks import WalkState
from vutrace.capture.model import CaptureRecord
from vutrace.capture.pcapng import CaptureWarning
from vutrace.capture.scan import scan


class CaptureFollower:
    """Reads the records appended to a capture file since the last ``poll()``.

    A file that does not exist yet or is still empty gives no records (the writer may not have
    started). A file that is not a vutrace capture raises CaptureFormatError. An incomplete last
    block is kept until the rest of it arrives. If the file shrinks (replaced by a new capture)
    the follower starts again from its beginning.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: BinaryIO | None = None
        self._pending = b""
        self._state = WalkState()
        self._position = 0

    def poll(self) -> list[CaptureRecord]:
        """The records completed since the previous call (possibly none)."""
        if self._file is None:
            try:
                self._file = self.path.open("rb")
            except FileNotFoundError:
                return []
        if os.fstat(self._file.fileno()).st_size < self._position:
            self._restart()
        data = self._file.read()
        if not data:
            return []
        self._position += len(data)
        buf = self._pending + data
        if not self._state.order and not self._state.interfaces:
            blocks.check_file_start(buf[:4])
        packets, stop = blocks.walk(buf, self._state)
        batch = scan(buf, packets, self._state)
        for problem in batch.problems:
            warnings.warn(CaptureWarning(f"{self.path}: {problem}"), stacklevel=2)
        self._pending = buf[stop:]
        self._state.offset += stop
        return [batch.record(i) for i in range(len(batch))]

    def _restart(self) -> None:
        assert self._file is not None
        self._file.seek(0)
        self._pending = b""
        self._state = WalkState()
        self._position = 0

    @property
    def incomplete_bytes(self) -> int:
        """Bytes read that do not form a complete block yet."""
        return len(self._pending)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> CaptureFollower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def follow_records(
    path: str | os.PathLike[str],
    *,
    stop: threading.Event | None = None,
    poll_interval: float = 0.1,
    idle_timeout: float | None = None,
) -> Iterator[CaptureRecord]:
    """Yield the records of a capture as they are written, until ``stop`` is set or no new record
    arrived for ``idle_timeout`` seconds (None: wait for ever)."""
    stop = stop or threading.Event()
    with CaptureFollower(path) as follower:
        last = time.monotonic()
        while not stop.is_set():
            records = follower.poll()
            if records:
                last = time.monotonic()
                yield from records
                continue
            if idle_timeout is not None and time.monotonic() - last >= idle_timeout:
                return
            stop.wait(poll_interval)
