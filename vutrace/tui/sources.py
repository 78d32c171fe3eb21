"""Where the TUI's records come from: a capture file (first records fast, then all of it) or a growing capture.

Kept apart from the widgets (as Toolong keeps its file watchers apart): the app calls these from
worker threads and posts what they return to the UI.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from vutrace.capture import blocks
from vutrace.capture.blocks import WalkState
from vutrace.capture.follow import CaptureFollower
from vutrace.capture.pairing import MAY_WAIT, NO_REPLY, pair_replies, reply_expectation
from vutrace.capture.scan import scan
from vutrace.loader import frame_from_batch, frame_from_records, load

PREFIX_BYTES = 4 << 20
"""Bytes read for the first screen of a big capture (tens of thousands of records)."""
MAX_PENDING = 10_000
"""Unanswered requests a live capture remembers for pairing later replies."""


def read_prefix(path: Path, max_bytes: int = PREFIX_BYTES) -> tuple[pd.DataFrame, bool, list[str]]:
    """The records in the first ``max_bytes`` of a capture, whether that was the whole file, and (if it
    was) the warnings reading it gave.

    Raises CaptureError (one line) for a file that is not a vutrace capture.
    """
    try:
        with path.open("rb") as file:
            buf = file.read(max_bytes)
            whole = not file.read(1)
    except IsADirectoryError:
        raise blocks.CaptureError(f"{path} is a directory, not a capture file") from None
    except OSError as error:
        raise blocks.CaptureError(f"cannot read {path}: {error.strerror}") from None
    if whole:
        frame, caught = load_file(path, lambda _: None)
        return frame, True, caught
    blocks.check_file_start(buf[:4])
    state = WalkState()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        packets, _ = blocks.walk(buf, state)
        frame = frame_from_batch(scan(buf, packets, state))
    return frame, False, []


def load_file(path: Path, progress: Callable[[float], None]) -> tuple[pd.DataFrame, list[str]]:
    """The whole capture, and the warnings reading it gave (a cut-off last record...)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = load(path, progress=progress)
    return frame, [str(w.message) for w in caught]


class LiveCapture:
    """The records a capture file gains while it is written, as DataFrame batches.

    Replies are paired with requests across batches (reply_to is the request's row number in the
    whole capture, latency_ns the time between them), as ``vutrace.load`` pairs them in a file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.follower: CaptureFollower | None = CaptureFollower(path)
        self.rows = 0
        self._lock = threading.Lock()
        """poll (a worker thread) and close (the UI, on exit) never overlap."""
        self._pending: list[tuple[int, int, str, int, bool, int, int]] = []
        """Unanswered requests: (row, conn, channel, request id, is_reply, expectation, ts_ns)."""

    def poll(self) -> pd.DataFrame | None:
        """The records written since the last call, or None (also once closed).

        Raises CaptureFormatError for a file that is not a vutrace capture.
        """
        with self._lock, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.follower is None:
                return None
            records = self.follower.poll()
            if not records:
                return None
            frame = frame_from_records(records)
            self._pair(frame)
            self.rows += len(frame)
            return frame

    def _pair(self, frame: pd.DataFrame) -> None:
        channel = frame["channel"].astype(str).to_numpy()
        request_id = pd.to_numeric(frame["request_id"], errors="coerce")
        message = np.isin(channel, ("main", "backend")) & request_id.notna().to_numpy()
        local = np.flatnonzero(message)
        ids = request_id.to_numpy(dtype=np.float64, na_value=-1)[local].astype(np.int64).tolist()
        conns = frame["conn"].to_numpy()[local].tolist()
        replies = frame["is_reply"].to_numpy(dtype=bool)[local].tolist()
        needs = frame["need_reply"].to_numpy(dtype=bool)[local].tolist()
        stamps = frame["ts_ns"].to_numpy(dtype=np.int64)[local].tolist()
        chans = channel[local].tolist()
        new = [
            (self.rows + i, c, ch, rid, rep, NO_REPLY if rep else reply_expectation(ch, rid, need), ts)
            for i, c, ch, rid, rep, need, ts in zip(
                local.tolist(), conns, chans, ids, replies, needs, stamps, strict=True
            )
        ]
        rows = self._pending + new
        count = len(rows)
        reply_to, latency = pair_replies(
            np.arange(count),
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
            [r[4] for r in rows],
            [r[5] for r in rows],
            np.array([r[6] for r in rows], dtype=np.int64),
            count,
        )
        offset = len(self._pending)
        full_reply = np.full(len(frame), -1, dtype=np.int64)
        full_latency = np.full(len(frame), -1, dtype=np.int64)
        answered = np.flatnonzero(reply_to[offset:] >= 0)
        full_reply[local[answered]] = [rows[j][0] for j in reply_to[offset:][answered].tolist()]
        full_latency[local[answered]] = latency[offset:][answered]
        frame["reply_to"] = pd.arrays.IntegerArray(full_reply, full_reply < 0)
        frame["latency_ns"] = pd.arrays.IntegerArray(full_latency, full_reply < 0)
        done = set(reply_to[reply_to >= 0].tolist())
        self._pending = _still_waiting([r for j, r in enumerate(rows) if j not in done and not r[4] and r[5]])

    def close(self) -> None:
        with self._lock:
            if self.follower is not None:
                self.follower.close()
                self.follower = None


def _still_waiting(requests: list[tuple[int, int, str, int, bool, int, int]]) -> list:
    """Requests that may still get a reply: a newer request with the same key ends a conditional wait."""
    newest: dict[tuple[int, str, int], int] = {}
    for j, r in enumerate(requests):
        newest[(r[1], r[2], r[3])] = j
    kept = [r for j, r in enumerate(requests) if r[5] != MAY_WAIT or newest[(r[1], r[2], r[3])] == j]
    return kept[-MAX_PENDING:]
