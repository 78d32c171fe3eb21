"""The device-state stream relay: copies one SET_DEVICE_STATE_FD transfer between two FDs and records it.

One thread per transfer reads the writer's end (``src``) in chunks of up to the pipe size, records
each chunk, and writes it fully to the reader's end (``dst``); a second thread hashes the whole
stream. (With ``--state-payload hash`` the capture writer replaces each chunk's bytes by their
SHA-256, on the recorder thread.) The proxy
closes ``dst`` only when ``src`` reaches end-of-file, so the reader sees EOF exactly when the writer
closed. If the reader goes away first, ``src`` is closed so the writer sees the broken pipe.
Both FDs are non-blocking and every wait also watches a wake-up pipe, so :meth:`stop` is prompt.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import queue
import select
import threading
from collections.abc import Callable

from dissectors.spec import TRANSFER_DIRECTION
from vutrace.capture.model import CaptureRecord, EventName, RecordChannel, RecordKind
from vutrace.proxy.fdinfo import is_pipe
from vutrace.proxy.recorder import Recorder, now_ns

DEFAULT_PIPE_SIZE = 1 << 20
_DIRECTIONS = {name: value for value, name in TRANSFER_DIRECTION.items()}
SAVE = _DIRECTIONS["SAVE"]
"""Back-end writes the state, front-end reads it."""
LOAD = _DIRECTIONS["LOAD"]
"""Front-end writes the state, back-end reads it."""


def pipe_max_size() -> int:
    try:
        with open("/proc/sys/fs/pipe-max-size") as f:
            return int(f.read())
    except (OSError, ValueError):
        return DEFAULT_PIPE_SIZE


def enlarge_pipe(fd: int) -> int:
    """Raise a pipe's capacity as far as the system allows; returns the capacity in force."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, pipe_max_size())
    try:
        return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
    except OSError:
        return 0


def make_pipe() -> tuple[int, int]:
    """A close-on-exec pipe with the largest capacity allowed."""
    r, w = os.pipe2(os.O_CLOEXEC)
    enlarge_pipe(w)
    return r, w


class StreamDigest:
    """SHA-256 of a whole stream, computed on its own thread so hashing overlaps the copying.

    hashlib releases the GIL on large buffers, so the relay thread keeps moving bytes while this
    one hashes; at most ``backlog`` chunks wait (the relay blocks beyond that).
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


class StateStream:
    """Relays one device-state transfer from ``src`` to ``dst``; owns (and closes) both FDs."""

    def __init__(
        self,
        *,
        conn: int,
        stream: int,
        direction: int,
        provider: str,
        src: int,
        dst: int,
        recorder: Recorder,
        on_closed: Callable[[StateStream], None] | None = None,
    ) -> None:
        self.conn = conn
        self.stream = stream
        self.direction = direction
        self.provider = provider
        self.writer = "backend" if direction == SAVE else "frontend"
        self.src = src
        self.dst = dst
        self.recorder = recorder
        self._on_closed = on_closed
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.total = 0
        self.chunks = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"state-{conn}-{stream}", daemon=True)

    def start(self) -> None:
        capacity = 0
        for fd in (self.src, self.dst):
            if is_pipe(fd):
                capacity = max(capacity, enlarge_pipe(fd))
            os.set_blocking(fd, False)
        self._chunk_size = capacity or DEFAULT_PIPE_SIZE
        self.recorder.event(
            EventName.STATE_OPEN,
            self.conn,
            stream=self.stream,
            direction=TRANSFER_DIRECTION.get(self.direction, str(self.direction)),
            provider=self.provider,
            writer=self.writer,
            pipe_size=capacity,
        )
        self.thread.start()

    def stop(self) -> None:
        """Stop relaying (proxy shutdown): the thread closes both ends and records the close."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def join(self, timeout: float) -> bool:
        return self.done.wait(timeout)

    def _wait(self, fd: int, event: int) -> bool:
        """Wait until ``fd`` is ready; False if the stream was stopped."""
        poller = select.poll()
        poller.register(fd, event)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            ready = dict(poller.poll())
            if self._wake_r in ready:
                return False
            if fd in ready:
                return True

    def _write_all(self, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.dst, view) :]
            except BlockingIOError:
                if not self._wait(self.dst, select.POLLOUT):
                    return False
        return True

    def _run(self) -> None:
        started = now_ns()
        digest = StreamDigest()
        reason = "eof"
        try:
            while True:
                try:
                    chunk = os.read(self.src, self._chunk_size)
                except BlockingIOError:
                    if not self._wait(self.src, select.POLLIN):
                        reason = "stopped"
                        break
                    continue
                if not chunk:
                    break
                self._record_chunk(chunk)
                digest.update(chunk)
                if not self._write_all(chunk):
                    reason = "stopped"
                    break
        except OSError as error:
            reason = "reader closed" if error.errno in (errno.EPIPE, errno.ECONNRESET) else f"error: {error}"
        finally:
            for fd in (self.dst, self.src, self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.recorder.event(
            EventName.STATE_CLOSE,
            self.conn,
            stream=self.stream,
            direction=TRANSFER_DIRECTION.get(self.direction, str(self.direction)),
            provider=self.provider,
            writer=self.writer,
            bytes=self.total,
            chunks=self.chunks,
            sha256=digest.hexdigest(),
            duration_ns=now_ns() - started,
            reason=reason,
        )
        self.done.set()
        if self._on_closed:
            self._on_closed(self)

    def _record_chunk(self, chunk: bytes) -> None:
        length = len(chunk)
        self.recorder.emit(
            CaptureRecord(
                kind=RecordKind.STATE_CHUNK,
                ts_ns=now_ns(),
                conn=self.conn,
                channel=RecordChannel.STATE,
                sender=self.writer,
                data=chunk,
                offset=self.total,
                length=length,
                stream=self.stream,
            )
        )
        self.total += length
        self.chunks += 1
