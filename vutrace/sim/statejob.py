"""One device-state transfer on the back-end, run in a thread as the spec's SET_DEVICE_STATE_FD asks.

SAVE writes the stream (``state.encode_stream``) into the channel and closes it;
LOAD reads the channel to EOF and verifies it (``state.StreamLoader``). The
message loop starts the job and answers the front-end at once; CHECK_DEVICE_STATE
later joins it (bounded) and reports the result.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable

from vutrace.sim.errors import SimError
from vutrace.sim.reports import TransferReport
from vutrace.sim.state import DeviceSnapshot, StreamLoader, encode_stream
from vutrace.sim.transfer import receive_stream, send_stream

SAVE = 0
LOAD = 1


class StateJob:
    def __init__(
        self,
        direction: int,
        fd: int,
        report: TransferReport,
        *,
        timeout: float,
        snapshot: DeviceSnapshot | None = None,
        max_rings: int = 16,
        on_problem: Callable[[str], None],
    ) -> None:
        self.direction = direction
        self.fd = fd
        self.report = report
        self.timeout = timeout
        self.snapshot = snapshot
        self.max_rings = max_rings
        self.on_problem = on_problem
        self.loaded: DeviceSnapshot | None = None
        self._thread = threading.Thread(target=self._run, name=f"state {report.direction}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """True when the job finished within ``timeout``."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        started = time.monotonic()
        digest = hashlib.sha256()
        try:
            if self.direction == SAVE:
                assert self.snapshot is not None

                def chunks():
                    for chunk in encode_stream(self.snapshot):
                        digest.update(chunk)
                        yield chunk

                def count(n: int) -> None:
                    self.report.bytes += n

                send_stream(self.fd, chunks(), self.timeout, "device state SAVE", count)
            else:
                loader = StreamLoader(self.max_rings)

                def sink(data: bytes) -> None:
                    digest.update(data)
                    loader.feed(data)
                    self.report.bytes += len(data)

                receive_stream(self.fd, sink, self.timeout, "device state LOAD")
                self.loaded = self.report.snapshot = loader.finish()
        except SimError as error:
            self.report.error = str(error)
            self.on_problem(str(error))
        finally:
            os.close(self.fd)
            self.report.seconds = time.monotonic() - started
            self.report.sha256 = digest.hexdigest()
