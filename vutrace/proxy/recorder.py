"""Where the proxy's records go: the capture writer (if any) and live listeners (callbacks, queues).

Relays hand records over with :meth:`Recorder.emit`, which only appends to an in-memory queue,
before they forward the message, so the capture lists messages in the order they were forwarded
(a request before its reply) while encoding and writing happen on the recorder's own thread, off
the forwarding path. Listeners run on that thread too and must be quick; a subscriber's bounded
queue drops what does not fit for that subscriber only (the capture always gets every record).
A SIGKILL can lose the records still queued (normally none or a few); everything written before
is readable.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Protocol

from vutrace.capture.model import CaptureRecord, EventName, FdInfo, RecordChannel, RecordKind

PROXY_SENDER = "proxy"
DRAIN_TIMEOUT_S = 10.0


class RecordSink(Protocol):
    def write(self, record: CaptureRecord) -> None: ...


Listener = Callable[[CaptureRecord], None]


def now_ns() -> int:
    return time.time_ns()


class Recorder:
    """Orders records, writes them to ``writer`` and passes them to listeners, on one thread."""

    def __init__(self, writer: RecordSink | None = None) -> None:
        self.writer = writer
        """Where records are stored; None keeps them for the listeners only."""
        self._listeners: tuple[Listener, ...] = ()
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.write_error: BaseException | None = None
        """The first error the writer raised (forwarding goes on without the capture)."""

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="proxy-recorder", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Write everything queued, then stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(DRAIN_TIMEOUT_S)
            self._thread = None

    def flush(self, timeout: float = DRAIN_TIMEOUT_S) -> bool:
        """Wait until every record emitted so far was written and passed to the listeners."""
        if self._thread is None:
            return True
        reached = threading.Event()
        self._queue.put(reached)
        return reached.wait(timeout)

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = tuple(x for x in self._listeners if x is not listener)

    def subscribe(self, maxsize: int = 0) -> queue.Queue[CaptureRecord]:
        """A queue that receives every record from now on."""
        records: queue.Queue[CaptureRecord] = queue.Queue(maxsize)

        def put(record: CaptureRecord) -> None:
            with contextlib.suppress(queue.Full):
                records.put_nowait(record)

        self.add_listener(put)
        return records

    def emit(self, record: CaptureRecord) -> None:
        """Queue a record; records are written in the order of the emit calls."""
        if self._thread is None:
            self._deliver(record)
        else:
            self._queue.put(record)

    def emit_message(
        self, ts_ns: int, conn: int, channel: RecordChannel, sender: str, data: bytes, fds: tuple[FdInfo, ...]
    ) -> None:
        """Queue a MESSAGE record; the record object is built on the recorder thread (cheaper for relays)."""
        item = (ts_ns, conn, channel, sender, data, fds)
        if self._thread is None:
            self._deliver(_message(item))
        else:
            self._queue.put(item)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if isinstance(item, tuple):
                self._deliver(_message(item))
            elif isinstance(item, threading.Event):
                item.set()
            else:
                self._deliver(item)

    def _deliver(self, record: CaptureRecord) -> None:
        writer = self.writer
        if writer is not None and self.write_error is None:
            try:
                writer.write(record)
            except Exception as error:  # a full disk must not stop the forwarding
                self.write_error = error
        for listener in self._listeners:
            listener(record)

    def event(self, name: EventName | str, conn: int = 0, stream: int = 0, **attrs: object) -> None:
        self.emit(
            CaptureRecord(
                kind=RecordKind.EVENT,
                ts_ns=now_ns(),
                conn=conn,
                channel=RecordChannel.EVENT,
                sender=PROXY_SENDER,
                event=str(name),
                attrs=attrs,
                stream=stream,
            )
        )


_MessageItem = tuple[int, int, RecordChannel, str, bytes, tuple[FdInfo, ...]]
_Item = CaptureRecord | _MessageItem | threading.Event | None


def _message(item: _MessageItem) -> CaptureRecord:
    ts_ns, conn, channel, sender, data, fds = item
    return CaptureRecord(
        kind=RecordKind.MESSAGE, ts_ns=ts_ns, conn=conn, channel=channel, sender=sender, data=data, fds=fds
    )
