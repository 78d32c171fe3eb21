"""The device-state stream relay: copies one SET_DEVICE_STATE_FD transfer between two FDs and records it.

A :class:`StateStream` runs on its connection's event loop, next to the message relays: it starts
the moment the SET_DEVICE_STATE_FD reply is out, with no thread to wake. When both ends are pipes
it passes each chunk on with ``tee(2)`` (the reader gets the bytes without the proxy copying them)
and then takes the same chunk out of ``src`` for the capture: with full capture into a capture
pipe of its own (``splice(2)``, by page reference, so the writer can go on at once), from which the
capture writer splices it into the file; otherwise it reads it. When an end is not a pipe, it reads
a chunk and writes it on.
A chunk is what one call moves, up to the pipe size; the loop serves its other sockets between
chunks. With ``--state-payload full`` each chunk's bytes go to the capture and nothing is hashed
here (the analysis hashes the recorded bytes); with ``hash`` each chunk's SHA-256 is computed here
and the whole stream's SHA-256 on a second thread, for the ``state_close`` event.

The proxy closes ``dst`` only when ``src`` reaches end-of-file, so the reader sees EOF exactly
when the writer closed; ``state_close`` takes its place (and timestamp) in the capture at that
moment, before the connection lets a held CHECK_DEVICE_STATE go. If the reader goes away first,
``src`` is closed so the writer sees the broken pipe.
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import hashlib
import os
import queue
import termios
import threading
from collections.abc import Callable

from dissectors.spec import TRANSFER_DIRECTION
from vutrace.capture.model import CaptureRecord, EventName, RecordChannel, RecordKind
from vutrace.proxy.loop import IN, OUT, EventLoop
from vutrace.proxy.pipes import DEFAULT_PIPE_SIZE, TEE_AVAILABLE, enlarge_pipe, is_pipe, tee
from vutrace.proxy.recorder import PipedChunk, Recorder, event_record

_DIRECTIONS = {name: value for value, name in TRANSFER_DIRECTION.items()}
SAVE = _DIRECTIONS["SAVE"]
"""Back-end writes the state, front-end reads it."""
LOAD = _DIRECTIONS["LOAD"]
"""Front-end writes the state, back-end reads it."""


class StreamDigest:
    """SHA-256 of a whole stream, computed on its own thread so it overlaps the relay's own work.

    hashlib releases the GIL on large buffers; at most ``backlog`` chunks wait (the relay blocks
    beyond that).
    """

    def __init__(self, backlog: int = 32) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(backlog)
        self._digest = hashlib.sha256()
        self._thread = threading.Thread(target=self._run, name="state-digest", daemon=True)
        self._thread.start()

    def update(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def hexdigest(self) -> str:
        """Finish: hash what is queued and give the digest of everything passed to update."""
        self._queue.put(None)
        self._thread.join()
        return self._digest.hexdigest()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._digest.update(chunk)


def _readable_bytes(fd: int) -> int:
    """Bytes waiting in a pipe (FIONREAD)."""
    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return count[0]


class StateStream:
    """Relays one device-state transfer from ``src`` to ``dst`` on ``loop``; owns (and closes) both FDs."""

    def __init__(
        self,
        *,
        loop: EventLoop,
        conn: int,
        stream: int,
        direction: int,
        provider: str,
        src: int,
        dst: int,
        recorder: Recorder,
        hash_payload: bool = False,
        on_finished: Callable[[StateStream], None] | None = None,
    ) -> None:
        self.loop = loop
        self.conn = conn
        self.stream = stream
        self.direction = direction
        self.provider = provider
        self.writer = "backend" if direction == SAVE else "frontend"
        self.src = src
        self.dst = dst
        self.recorder = recorder
        self.hash_payload = hash_payload
        self._on_finished = on_finished
        self._chunk_size = DEFAULT_PIPE_SIZE
        self._use_tee = False
        self._digest: StreamDigest | None = None
        self._capture_pipe: tuple[int, int] | None = None
        """Read and write end of the pipe the chunks wait in for the capture writer (full capture with tee)."""
        self._unsent = memoryview(b"")
        self._opened_ns = 0
        self.total = 0
        self.chunks = 0
        self.finished = False
        """True once the reader's end is closed (end-of-file passed on, or the transfer ended otherwise)
        and ``state_close`` has its place in the capture."""

    # -- on the loop thread -----------------------------------------------------------------------

    def start(self) -> None:
        """Record ``state_open`` and start relaying (right after the SET_DEVICE_STATE_FD reply went out)."""
        capacity = 0
        error = ""
        pipes = [is_pipe(fd) for fd in (self.src, self.dst)]
        try:
            for fd, pipe in zip((self.src, self.dst), pipes, strict=True):
                if pipe:
                    capacity = max(capacity, enlarge_pipe(fd))
                os.set_blocking(fd, False)
        except OSError as failure:
            error = f"error: {failure}"
        self._chunk_size = capacity or DEFAULT_PIPE_SIZE
        self._use_tee = TEE_AVAILABLE and all(pipes)
        opened = self.recorder.reserve()
        self._opened_ns = opened.ts_ns
        self.recorder.fill(opened, self._event(opened.ts_ns, EventName.STATE_OPEN, pipe_size=capacity))
        if self.hash_payload:
            self._digest = StreamDigest()
        elif self._use_tee and not error and self.recorder.splices_state():
            self._open_capture_pipe()
        if error:
            self._finish(error)
        else:
            self._wait_for(self.src, IN)

    def _open_capture_pipe(self) -> None:
        """The pipe chunks wait in for the capture, if one as large as a chunk can be had."""
        r, w = os.pipe2(os.O_CLOEXEC)
        if enlarge_pipe(w) >= self._chunk_size:
            self._capture_pipe = (r, w)
        else:
            os.close(r)
            os.close(w)

    def _close_capture_pipe(self) -> None:
        """Close the capture pipe once the capture writer has taken every chunk out of it."""
        if self._capture_pipe is not None:
            self.recorder.flush()
            for fd in self._capture_pipe:
                os.close(fd)
            self._capture_pipe = None

    def stop(self) -> None:
        """End the transfer now (proxy shutdown): both ends are closed, ``state_close`` says ``stopped``."""
        if not self.finished:
            self._finish("stopped")

    def _wait_for(self, fd: int, mask: int) -> None:
        """Be called back when ``fd`` is ready, and for nothing else."""
        other = self.dst if fd == self.src else self.src
        self.loop.forget(other)
        try:
            self.loop.watch(fd, mask, self._ready)
        except PermissionError:  # a regular file (epoll refuses them) is always ready
            self.loop.call_soon(lambda: self._ready(mask))

    def _ready(self, _bits: int) -> None:
        if self.finished:
            return
        try:
            if self._unsent:
                self._send_unsent()
            elif self._use_tee:
                self._tee_chunk()
            else:
                self._copy_chunk()
        except OSError as error:
            self._finish("reader closed" if error.errno in (errno.EPIPE, errno.ECONNRESET) else f"error: {error}")

    def _tee_chunk(self) -> None:
        """Pass one chunk on with tee, then take it out of ``src`` for the capture."""
        try:
            n = tee(self.src, self.dst, self._chunk_size)
        except BlockingIOError:  # src empty, or dst full
            self._wait_for(*((self.dst, OUT) if _readable_bytes(self.src) else (self.src, IN)))
            return
        if not n:
            self._finish("eof")
            return
        if self._capture_pipe is not None:
            self._move_to_capture_pipe(n)
        else:
            parts = []
            while n:
                part = os.read(self.src, n)  # the bytes tee just passed on are there
                parts.append(part)
                n -= len(part)
            self._record(parts[0] if len(parts) == 1 else b"".join(parts))
        self._wait_for(self.src, IN)

    def _move_to_capture_pipe(self, length: int) -> None:
        """Move the ``length`` bytes tee just passed on from ``src`` into the capture pipe, and record them."""
        assert self._capture_pipe is not None
        read_end, write_end = self._capture_pipe
        left = length
        while left:
            try:
                left -= os.splice(self.src, write_end, left, flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
            except BlockingIOError:  # the capture pipe is full: let the capture writer take what waits in it
                self.recorder.drain(wait=True)
        slot = self.recorder.reserve()
        self.recorder.fill(slot, PipedChunk(self._chunk_record(slot.ts_ns, b"", length, None), read_end))
        self.total += length
        self.chunks += 1

    def _copy_chunk(self) -> None:
        """Read one chunk and write it on (when an end is not a pipe)."""
        try:
            chunk = os.read(self.src, self._chunk_size)
        except BlockingIOError:
            self._wait_for(self.src, IN)
            return
        if not chunk:
            self._finish("eof")
            return
        self._record(chunk)
        self._unsent = memoryview(chunk)
        self._send_unsent()

    def _send_unsent(self) -> None:
        try:
            while self._unsent:
                self._unsent = self._unsent[os.write(self.dst, self._unsent) :]
        except BlockingIOError:
            self._wait_for(self.dst, OUT)
            return
        self._wait_for(self.src, IN)

    def _record(self, chunk: bytes) -> None:
        """A STATE_CHUNK record for a chunk just passed on (stamped now, before any hashing)."""
        slot = self.recorder.reserve()
        length = len(chunk)
        digest = None
        if self._digest is not None:
            digest = hashlib.sha256(chunk).digest()
            self._digest.update(chunk)
            chunk = b""
        self.recorder.fill(slot, self._chunk_record(slot.ts_ns, chunk, length, digest))
        self.total += length
        self.chunks += 1

    def _chunk_record(self, ts_ns: int, data: bytes, length: int, digest: bytes | None) -> CaptureRecord:
        """The STATE_CHUNK record of the next ``length`` bytes of the stream."""
        return CaptureRecord(
            kind=RecordKind.STATE_CHUNK,
            ts_ns=ts_ns,
            conn=self.conn,
            channel=RecordChannel.STATE,
            sender=self.writer,
            data=data,
            offset=self.total,
            length=length,
            sha256=digest,
            stream=self.stream,
        )

    def _finish(self, reason: str) -> None:
        """Pass end-of-file on (close ``dst``), give state_close its place at that moment, let the connection
        go on (a held CHECK_DEVICE_STATE goes now, after it in the capture), close the rest, record it."""
        for fd in (self.dst, self.src):
            self.loop.forget(fd)
        with contextlib.suppress(OSError):
            os.close(self.dst)
        closed = self.recorder.reserve()
        attrs: dict = {"bytes": self.total, "chunks": self.chunks}
        try:
            self.finished = True
            if self._on_finished:
                self._on_finished(self)
            with contextlib.suppress(OSError):
                os.close(self.src)
            if self._digest is not None:
                attrs["sha256"] = self._digest.hexdigest()
        finally:
            attrs.update(duration_ns=closed.ts_ns - self._opened_ns, reason=reason)
            self.recorder.fill(closed, self._event(closed.ts_ns, EventName.STATE_CLOSE, **attrs))
            self._close_capture_pipe()

    def _event(self, ts_ns: int, name: EventName, **attrs: object) -> CaptureRecord:
        common = {
            "direction": TRANSFER_DIRECTION.get(self.direction, str(self.direction)),
            "provider": self.provider,
            "writer": self.writer,
        }
        return event_record(ts_ns, name, self.conn, self.stream, {**common, **attrs})
