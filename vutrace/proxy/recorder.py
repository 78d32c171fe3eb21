"""Where the proxy's records go: the capture writer (if any) and live listeners, in forwarding order.

Every record takes its place and its timestamp in one step, :meth:`Recorder.reserve`, under a
lock: the capture's order is the order of the reservations and its timestamps never go back. A
relay reserves just before it forwards a message (so a request is always before its reply), sends,
and only then fills the slot with what it forwarded (bytes, FD descriptions). Writing is
:meth:`Recorder.drain`: whichever thread drains writes every filled slot at the head of the line,
its own and those other threads filled meanwhile. Events and state chunks drain at once; message
records are drained by the relays' event loop when none of its sockets is ready (see
:mod:`vutrace.proxy.loop`), so no thread hand-off on the forwarding path. A state chunk may wait in a
pipe (:class:`PipedChunk`) until it is written: the writer splices it from there into the file.

Listeners run while the records are written (in order, one at a time) and must be quick; one
that raises is removed. A subscriber's bounded queue drops what does not fit for that subscriber
only (the capture always gets every record). A SIGKILL can lose the few records reserved but not
written yet.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from vutrace.capture.model import CaptureRecord, EventName, FdInfo, RecordChannel, RecordKind

PROXY_SENDER = "proxy"
DRAIN_TIMEOUT_S = 10.0
MAX_DEFERRED = 64
"""Records waiting to be written beyond this are written at once (a loop that is never idle still records)."""


class RecordSink(Protocol):
    def write(self, record: CaptureRecord) -> None: ...


Listener = Callable[[CaptureRecord], None]
MessageItem = tuple[int, RecordChannel, str, bytes, tuple[FdInfo, ...], int]
"""conn, channel, sender, data, FD descriptions, late FDs: a MESSAGE record without its timestamp."""


class PipedChunk:
    """A state chunk whose bytes wait in a pipe (the capture pipe of its transfer) until it is written.

    ``record`` has the chunk's length and no bytes. The capture writer splices the bytes from the
    pipe into the file; a listener gets them read out of the pipe.
    """

    __slots__ = ("pipe", "record")

    def __init__(self, record: CaptureRecord, pipe: int) -> None:
        self.record = record
        self.pipe = pipe


class Slot:
    """A record's place in the capture: its timestamp, and the record once it is known."""

    __slots__ = ("item", "ts_ns")

    def __init__(self, ts_ns: int) -> None:
        self.ts_ns = ts_ns
        self.item: CaptureRecord | MessageItem | PipedChunk | None = None


class Recorder:
    """Orders records by reservation, writes them to ``writer`` and passes them to listeners."""

    def __init__(self, writer: RecordSink | None = None) -> None:
        self.writer = writer
        self._listeners: tuple[Listener, ...] = ()
        self._listeners_lock = threading.Lock()
        self._order_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._slots: deque[Slot] = deque()
        self._reserved = 0
        self._delivered = 0
        self.write_error: BaseException | None = None
        """The first error the writer raised (forwarding goes on without the capture)."""
        self.listener_error: BaseException | None = None
        """The first error a listener raised (that listener was removed)."""

    @property
    def writer(self) -> RecordSink | None:
        """Where records are stored; None keeps them for the listeners only."""
        return self._writer

    @writer.setter
    def writer(self, writer: RecordSink | None) -> None:
        self._writer = writer
        self._write_message = getattr(writer, "write_message", None)
        """The writer's way to store a message without a CaptureRecord (CaptureWriter has one)."""
        full = getattr(writer, "state_payload", None) == "full"
        self._write_piped = getattr(writer, "write_piped", None) if full else None
        """The writer's way to store a state chunk straight from a pipe (CaptureWriter keeping full state)."""

    def splices_state(self) -> bool:
        """State chunks are best recorded as :class:`PipedChunk` (the capture takes them from a pipe, and
        no listener needs their bytes)."""
        return self._write_piped is not None and not self._listeners

    # -- producing records --------------------------------------------------------------------

    def reserve(self) -> Slot:
        """The next place in the capture, stamped now. Fill it soon, with nothing that can fail in between:
        the records reserved after it wait for it."""
        with self._order_lock:
            slot = Slot(time.time_ns())
            self._slots.append(slot)
            self._reserved += 1
        return slot

    def fill(self, slot: Slot, item: CaptureRecord | MessageItem | PipedChunk, write: bool = True) -> None:
        """Give the slot its record (a CaptureRecord stamped ``slot.ts_ns``, or a message item) and write
        what can be written (``write`` False leaves that to the next :meth:`drain`, on any thread)."""
        slot.item = item
        if write:
            self.drain()

    def message(
        self,
        slot: Slot,
        conn: int,
        channel: RecordChannel,
        sender: str,
        data: bytes,
        fds: tuple[FdInfo, ...] = (),
        late_fds: int = 0,
    ) -> None:
        """Fill ``slot`` with a MESSAGE record; it is built and written at the next :meth:`drain` (the relays'
        event loop drains when no socket is ready, so the next message is not kept waiting)."""
        slot.item = (conn, channel, sender, data, fds, late_fds)
        if len(self._slots) > MAX_DEFERRED:
            self.drain()

    def event(self, name: EventName | str, conn: int = 0, stream: int = 0, **attrs: object) -> None:
        """Record a proxy event now."""
        slot = self.reserve()
        self.fill(slot, event_record(slot.ts_ns, name, conn, stream, attrs))

    # -- writing --------------------------------------------------------------------------------

    def pending(self) -> bool:
        """A filled slot waits at the head of the line (a drain would write something)."""
        try:
            return self._slots[0].item is not None
        except IndexError:
            return False

    def drain(self, wait: bool = False) -> None:
        """Write the filled slots at the head of the line.

        If another thread is writing, it also writes what this thread filled (it looks again
        after letting go of the lock); ``wait`` makes this thread wait for it instead.
        """
        slots = self._slots
        while True:
            if not self._write_lock.acquire(wait):
                return
            try:
                while slots:
                    slot = slots[0]
                    item = slot.item
                    if item is None:
                        break
                    slots.popleft()
                    if item.__class__ is tuple:
                        self._deliver_message(slot.ts_ns, item)  # type: ignore[arg-type]
                    elif item.__class__ is PipedChunk:
                        self._deliver_piped(item)  # type: ignore[arg-type]
                    else:
                        self._deliver(item)  # type: ignore[arg-type]
                    self._delivered += 1
            finally:
                self._write_lock.release()
            try:
                if slots[0].item is None:
                    return
            except IndexError:
                return

    def flush(self, timeout: float = DRAIN_TIMEOUT_S) -> bool:
        """Wait until every record reserved so far was written and passed to the listeners."""
        target = self._reserved
        deadline = time.monotonic() + timeout
        while True:
            self.drain(wait=True)
            if self._delivered >= target:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)

    def close(self) -> None:
        """Write everything that can be written."""
        self.flush()

    def _deliver_message(self, ts_ns: int, item: MessageItem) -> None:
        if self._listeners or self._write_message is None:
            self._deliver(_message(ts_ns, item))
        elif self.write_error is None:
            try:
                self._write_message(ts_ns, *item)
            except Exception as error:  # a full disk must not stop the forwarding
                self.write_error = error

    def _deliver_piped(self, chunk: PipedChunk) -> None:
        if self._listeners or self.write_error is not None or self._write_piped is None:
            self._deliver(replace(chunk.record, data=_read_exactly(chunk.pipe, chunk.record.length)))
            return
        try:
            self._write_piped(chunk.record, chunk.pipe)
        except Exception as error:  # a full disk must not stop the forwarding (the bytes left the pipe)
            self.write_error = error

    def _deliver(self, record: CaptureRecord) -> None:
        writer = self._writer
        if writer is not None and self.write_error is None:
            try:
                writer.write(record)
            except Exception as error:  # a full disk must not stop the forwarding
                self.write_error = error
        for listener in self._listeners:
            try:
                listener(record)
            except Exception as error:  # one broken listener must not stop the forwarding
                self.listener_error = self.listener_error or error
                self.remove_listener(listener)

    # -- listeners ------------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        with self._listeners_lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._listeners_lock:
            self._listeners = tuple(x for x in self._listeners if x is not listener)

    def subscribe(self, maxsize: int = 0) -> queue.Queue[CaptureRecord]:
        """A queue that receives every record from now on."""
        records: queue.Queue[CaptureRecord] = queue.Queue(maxsize)

        def put(record: CaptureRecord) -> None:
            with contextlib.suppress(queue.Full):
                records.put_nowait(record)

        self.add_listener(put)
        return records


def _read_exactly(pipe: int, length: int) -> bytes:
    """The next ``length`` bytes of ``pipe`` (fewer only if it fails or ends)."""
    parts = []
    while length > 0:
        try:
            part = os.read(pipe, length)
        except OSError:
            break
        if not part:
            break
        parts.append(part)
        length -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def event_record(ts_ns: int, name: EventName | str, conn: int, stream: int, attrs: dict) -> CaptureRecord:
    return CaptureRecord(
        kind=RecordKind.EVENT,
        ts_ns=ts_ns,
        conn=conn,
        channel=RecordChannel.EVENT,
        sender=PROXY_SENDER,
        event=str(name),
        attrs=attrs,
        stream=stream,
    )


def _message(ts_ns: int, item: MessageItem) -> CaptureRecord:
    conn, channel, sender, data, fds, late_fds = item
    return CaptureRecord(
        kind=RecordKind.MESSAGE,
        ts_ns=ts_ns,
        conn=conn,
        channel=channel,
        sender=sender,
        data=data,
        fds=fds,
        late_fds=late_fds,
    )
