"""One event loop thread per proxied connection: epoll over all its sockets, calls from other threads, timers.

Everything of a connection (both directions of the main socket and of every interposed back-end
channel, its device-state transfers) runs on this one thread: no thread hand-off on the way of a
request and its reply. Work that can wait (writing the capture) is done when no FD is ready, so a
reply that is already there goes out first. Other threads reach the loop only through
:meth:`EventLoop.call_soon` (a wake-up pipe); everything else is called on the loop thread.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

IN = select.EPOLLIN
OUT = select.EPOLLOUT
HUP = select.EPOLLHUP | select.EPOLLERR

Handler = Callable[[int], None]
"""Called with the epoll event bits of its FD."""


class Deferred(Protocol):
    """Work the loop does only when nothing is ready (the recorder writing what the relays forwarded)."""

    def pending(self) -> bool: ...

    def drain(self) -> None: ...


class EventLoop:
    """Runs handlers for ready FDs, calls queued from other threads and due timers, until :meth:`finish`."""

    def __init__(self, name: str, on_error: Callable[[BaseException], None], deferred: Deferred | None = None) -> None:
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._epoll.register(self._wake_r, IN)
        self._handlers: dict[int, Handler] = {}
        self._masks: dict[int, int] = {}
        self._calls: deque[Callable[[], None]] = deque()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_ids = itertools.count()
        self._on_error = on_error
        self._deferred = deferred
        self._running = True
        self._then: Callable[[], None] | None = None
        self._closed = False
        self._close_lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()

    # -- used on the loop thread ----------------------------------------------------------------

    def watch(self, fd: int, mask: int, handler: Handler) -> None:
        """Wait for ``mask`` (IN, OUT or both) on ``fd``; 0 stops watching it (so a hang-up cannot spin)."""
        current = self._masks.get(fd)
        if mask == current:
            return
        if not mask:
            self.forget(fd)
            return
        if current is None:
            self._epoll.register(fd, mask)
        else:
            self._epoll.modify(fd, mask)
        self._masks[fd] = mask
        self._handlers[fd] = handler

    def forget(self, fd: int) -> None:
        if self._masks.pop(fd, None) is not None:
            self._handlers.pop(fd, None)
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(fd)

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._timer_ids), callback))

    def finish(self, then: Callable[[], None] | None = None) -> None:
        """Stop after the current round; the loop closes its epoll and wake-up pipe, then calls ``then``
        (on the loop thread), so whoever counts the loop as gone also sees its FDs closed."""
        self._running = False
        self._then = then

    # -- used from any thread -------------------------------------------------------------------

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop thread (dropped once the loop has finished)."""
        with self._close_lock:
            if self._closed:
                return
            self._calls.append(callback)
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    # -- the loop -------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._running:
                try:
                    self._round()
                except Exception as error:  # a bug in one handler must not leave the connection hanging
                    self._on_error(error)
        finally:
            with self._close_lock:
                self._closed = True
            self._calls.clear()
            self._epoll.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
            if self._then is not None:
                self._then()

    def _round(self) -> None:
        """Wait for the next events, then run their handlers, the queued calls and the due timers."""
        handlers = self._handlers
        for fd, bits in self._wait():
            handler = handlers.get(fd)
            if handler is not None:
                handler(bits)
            elif fd == self._wake_r:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 4096)
        while self._calls:
            self._calls.popleft()()
        if self._timers:
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                heapq.heappop(self._timers)[2]()

    def _wait(self) -> list[tuple[int, int]]:
        """The ready FDs; the deferred work runs first if nothing is ready yet."""
        deferred = self._deferred
        if deferred is not None and deferred.pending():
            events = self._epoll.poll(0)
            if events:
                return events
            deferred.drain()
        return self._epoll.poll(self._timeout())

    def _timeout(self) -> float:
        if self._calls:
            return 0
        if not self._timers:
            return -1
        return max(self._timers[0][0] - time.monotonic(), 0)
