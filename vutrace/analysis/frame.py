"""Read the loaded capture DataFrame (``vutrace.load``) as plain Python values.

Analysis walks messages in capture order with small state machines; this module turns the
DataFrame rows it needs into dicts (NA becomes None, numpy scalars become Python ones) once, so
the state machines stay simple and no other analysis module touches pandas indexing details.

Most rows of a big capture repeat a message seen before: the same decoded fields, channel, sender,
connection and FDs; only the columns in ``PER_RECORD`` (its time, its pairing, a state chunk's place
and bytes, an event's attributes) tell them apart. Rows are therefore grouped into *shapes* (equal
in every other column) with vectorised column codes, one dict is built per shape, and each row gets
a copy of it with its own per-record values. The shapes are kept: a question about the shared
columns needs one answer per shape (``Groups.where``).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from itertools import repeat
from operator import setitem
from typing import Any

import numpy as np
import pandas as pd

PROXY_CONN = 0
"""Connection number of the proxy's own events (listen, shutdown); connections count from 1."""
MESSAGE_CHANNELS = ("main", "backend")
STATE_CHANNEL = "state"
EVENT_CHANNEL = "event"
PER_RECORD = ("ts_ns", "reply_to", "latency_ns", "nbytes", "offset", "sha256", "attrs", "raw")
"""Columns that differ between records of the same message (besides ``"row"``): the loader decodes a
message's fields from its bytes, channel and FD count, and adds these per record. A shape's rows share
every other column; they also share which of these columns are present."""
_AS_IS = frozenset({tuple, list, dict, bytes, str})
"""Types ``plain`` returns unchanged."""
_KEY_SPAN = 1 << 62
"""Shape keys are mixed-radix numbers of the column codes, renumbered before they would pass this."""


def record_number(row: int) -> int:
    """The number ``vutrace show`` prints for a row (counting from 1, like Wireshark's frame numbers)."""
    return row + 1


def plain(value: Any) -> Any:
    """A DataFrame cell as a plain Python value: None for NA, int/float/bool for numpy scalars."""
    if value is None:
        return None
    if isinstance(value, (tuple, list, dict, bytes, str)):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        return value
    if hasattr(value, "item"):
        return value.item()
    return value


Question = Callable[[dict[str, Any]], Any]
"""Asked of a group's first record; a true answer selects the group."""


class Groups:
    """Records in groups that share everything a question about them may read (see ``plain_rows``).

    The methods ask a question once per group (of the groups ``among``, default all) and return what
    the selected groups hold, in capture order.
    """

    def __init__(self, records: list[dict[str, Any]], number: np.ndarray, row_numbers: np.ndarray) -> None:
        self.records = records
        self.number = number
        """Each record's group, numbered in order of first appearance (0, 1, 2, ...)."""
        self.row_numbers = row_numbers
        """Each record's ``"row"``."""
        self.firsts = first_positions(number)
        """The position of each group's first record."""
        self.examples = list(map(records.__getitem__, self.firsts.tolist()))
        """The first record of each group."""

    def split(self, by: np.ndarray) -> Groups:
        """The same records in finer groups: records of one group here and of one number in ``by`` (>= 0)."""
        combined = self.number * (int(by.max(initial=0)) + 1) + by
        return Groups(self.records, pd.factorize(combined)[0].astype(np.int64, copy=False), self.row_numbers)

    def groups(self, question: Question, among: np.ndarray | None = None) -> np.ndarray:
        """The numbers of the groups whose first record gets a true answer."""
        return self._asked(question, among)[0]

    def where(self, question: Question, among: np.ndarray | None = None) -> list[dict[str, Any]]:
        """The records of the selected groups."""
        selected = np.zeros(len(self.examples), dtype=bool)
        selected[self.groups(question, among)] = True
        return list(map(self.records.__getitem__, np.flatnonzero(selected[self.number]).tolist()))

    def row_numbers_where(self, question: Question, among: np.ndarray | None = None) -> np.ndarray:
        """The ``"row"`` of the records of the selected groups."""
        selected = np.zeros(len(self.examples), dtype=bool)
        selected[self.groups(question, among)] = True
        return self.row_numbers[selected[self.number]]

    def answers(self, question: Question, among: np.ndarray | None = None) -> list[tuple[dict[str, Any], Any]]:
        """(record, its group's answer) for the records of the selected groups."""
        groups, answers = self._asked(question, among)
        answer_of = np.full(len(self.examples), -1, dtype=np.int64)
        answer_of[groups] = np.arange(len(groups))
        positions = np.flatnonzero(answer_of[self.number] >= 0)
        records = map(self.records.__getitem__, positions.tolist())
        return list(zip(records, map(answers.__getitem__, answer_of[self.number[positions]].tolist()), strict=True))

    def row_numbers_by(
        self, question: Question, key: Callable[[dict[str, Any]], Hashable], among: np.ndarray | None = None
    ) -> dict[Hashable, np.ndarray]:
        """The ``"row"`` of the records of the selected groups, split by ``key`` of the group's first record."""
        keys: dict[Hashable, int] = {}
        key_of = np.full(len(self.examples), -1, dtype=np.int64)
        for group in self.groups(question, among).tolist():
            key_of[group] = keys.setdefault(key(self.examples[group]), len(keys))
        if not keys:
            return {}
        each = key_of[self.number]
        positions = np.flatnonzero(each >= 0)
        order = np.argsort(each[positions], kind="stable")
        counts = np.bincount(each[positions], minlength=len(keys))
        parts = np.split(self.row_numbers[positions[order]], np.cumsum(counts)[:-1])
        return dict(zip(keys, parts, strict=True))

    def _asked(self, question: Question, among: np.ndarray | None) -> tuple[np.ndarray, list[Any]]:
        """The selected group numbers (ascending) and their answers."""
        asked = np.arange(len(self.examples)) if among is None else among
        answers = list(map(question, map(self.examples.__getitem__, asked.tolist())))
        passed = np.fromiter(map(bool, answers), dtype=bool, count=len(answers))
        return asked[passed], [a for a, keep in zip(answers, passed.tolist(), strict=True) if keep]


def first_positions(number: np.ndarray) -> np.ndarray:
    """Where each number first occurs, for numbers given in order of first appearance (0, 1, 2, ...)."""
    return np.flatnonzero(np.diff(np.maximum.accumulate(number), prepend=-1) > 0)


def plain_rows(df: pd.DataFrame) -> Groups:
    """Every row as a dict of its non-NA cells, with the row index under ``"row"``, grouped by shape.

    Records of one shape have the same keys and equal values (of the same types) in every key but
    ``"row"`` and ``PER_RECORD``; a question that reads only those is answered alike for all of them.
    """
    n = len(df)
    names = list(df.columns)
    index = df.index.tolist()
    if not pd.api.types.is_integer_dtype(df.index.dtype):
        index = [int(i) for i in index]
    shared: dict[str, tuple[np.ndarray, list[Any]]] = {}
    own: dict[str, tuple[np.ndarray, list[Any]]] = {}
    key, span = np.zeros(n, dtype=np.int64), 1
    for name in names:
        series = df[name]
        if name in PER_RECORD:
            present = ~series.isna().to_numpy(dtype=bool)
            own[name] = (present, _plain_values(series[present]))
            codes, size = present.view(np.int8), 1
        else:
            codes, values = _codes(series)
            size = len(values)
            codes = codes.astype(np.min_scalar_type(-size - 1), copy=False)
            shared[name] = (codes, values)
        if span * (size + 1) >= _KEY_SPAN:
            key, uniques = pd.factorize(key)
            span = len(uniques)
        key *= size + 1
        key += codes
        key += 1
        span *= size + 1
    shape = pd.factorize(key)[0].astype(np.int64, copy=False)
    templates = _templates(names, first_positions(shape), shared, own)
    records = list(map(dict.copy, map(templates.__getitem__, shape.tolist())))
    deque(map(setitem, records, repeat("row"), index), maxlen=0)
    for name, (present, values) in own.items():
        owners = records if len(values) == n else map(records.__getitem__, np.flatnonzero(present).tolist())
        deque(map(setitem, owners, repeat(name), values), maxlen=0)
    return Groups(records, shape, np.array(index, dtype=np.int64))


def _templates(
    names: list[str],
    firsts: np.ndarray,
    shared: dict[str, tuple[np.ndarray, list[Any]]],
    own: dict[str, tuple[np.ndarray, list[Any]]],
) -> list[dict[str, Any]]:
    """One dict per shape with its keys in column order: the shared values, and a placeholder for the
    per-record ones (every record overwrites them)."""
    columns: list[list[Any]] = [[True] * len(firsts)]
    for name in names:
        if name in shared:
            codes, values = shared[name]
            columns.append([None if c < 0 else values[c] for c in codes[firsts].tolist()])
        else:
            columns.append([True if p else None for p in own[name][0][firsts].tolist()])
    keys = ["row", *names]
    return [{k: v for k, v in zip(keys, values, strict=True) if v is not None} for values in zip(*columns, strict=True)]


def _codes(series: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Each cell's code (-1 for NA) and the plain value of each code: cells with equal codes have equal
    plain values of the same type. Integer, boolean, string and categorical columns are factorized; any other
    column is coded by the type and ``repr`` of its plain values (so 1, 1.0 and True, or 0.0 and -0.0, differ)."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy(dtype=np.int64)
        return codes, [plain(v) for v in series.cat.categories.astype(object).tolist()]
    if isinstance(dtype, pd.StringDtype) or _is_whole(dtype):
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        return codes.astype(np.int64, copy=False), [plain(v) for v in uniques]
    present = ~series.isna().to_numpy(dtype=bool)
    values = [plain(v) for v in series[present].astype(object).tolist()]
    spellings = [f"{type(v).__qualname__}:{v!r}" for v in values]
    by_spelling = dict(zip(spellings, values, strict=True))
    number = {spelling: code for code, spelling in enumerate(by_spelling)}
    codes = np.full(len(series), -1, dtype=np.int64)
    codes[present] = [number[s] for s in spellings]
    return codes, list(by_spelling.values())


def _is_whole(dtype: Any) -> bool:
    """Integer and boolean columns (numpy or nullable): factorizing them keeps values and types apart."""
    return pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


def _plain_values(series: pd.Series) -> list[Any]:
    """The cells of a column without NA as plain values."""
    dtype = series.dtype
    if _is_whole(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        return series.to_numpy(dtype=getattr(dtype, "numpy_dtype", dtype)).tolist()
    values = series.astype(object).tolist()
    if isinstance(dtype, pd.StringDtype) or set(map(type, values)) <= _AS_IS:
        return values
    return [plain(v) for v in values]


@dataclass
class Capture:
    """One loaded capture with a label for output, and its rows as dicts (built once, on first use)."""

    df: pd.DataFrame
    label: str = "capture"
    path: str = ""
    _shapes: Groups | None = field(default=None, repr=False)
    _replies: dict[int, dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def shapes(self) -> Groups:
        """All rows as dicts, grouped by shape (computed once; see ``plain_rows``)."""
        if self._shapes is None:
            self._shapes = plain_rows(self.df)
        return self._shapes

    @property
    def records(self) -> list[dict[str, Any]]:
        """All rows as dicts, in capture order (computed once)."""
        return self.shapes.records

    def replies(self) -> dict[int, dict[str, Any]]:
        """The reply row of each answered request, keyed by the request's row index (the first reply wins;
        computed once)."""
        if self._replies is None:
            replies = self.shapes.where(lambda r: bool(r.get("is_reply")) and r.get("reply_to") is not None)
            requests = [int(r["reply_to"]) for r in replies]
            first: dict[int, Any] = dict.fromkeys(requests)
            first.update(zip(reversed(requests), reversed(replies), strict=True))
            self._replies = first
        return self._replies


def is_message(row: dict[str, Any]) -> bool:
    return row.get("channel") in MESSAGE_CHANNELS


def is_request(row: dict[str, Any]) -> bool:
    return is_message(row) and not row.get("is_reply")


def is_event(row: dict[str, Any], *names: str) -> bool:
    return row.get("channel") == EVENT_CHANNEL and (not names or row.get("request") in names)


def is_chunk(row: dict[str, Any]) -> bool:
    return row.get("channel") == STATE_CHANNEL


def attrs_of(row: dict[str, Any]) -> dict[str, Any]:
    """The attributes of an event row (the loader keeps them as a JSON object string)."""
    value = row.get("attrs")
    if isinstance(value, dict):
        return value
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def fd_list(row: dict[str, Any]) -> list[str]:
    """The descriptions of a message's FDs (the loader joins them with "; ")."""
    value = row.get("fds")
    if not value:
        return []
    return [part for part in str(value).split("; ") if part]
