"""Read the loaded capture DataFrame (``vutrace.load``) as plain Python values.

Analysis walks messages in capture order with small state machines; this module turns the
DataFrame rows it needs into dicts (NA becomes None, numpy scalars become Python ones) once, so
the state machines stay simple and no other analysis module touches pandas indexing details.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

PROXY_CONN = 0
"""Connection number of the proxy's own events (listen, shutdown); connections count from 1."""
MESSAGE_CHANNELS = ("main", "backend")
STATE_CHANNEL = "state"
EVENT_CHANNEL = "event"


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


def _plain_column(series: pd.Series) -> list[Any]:
    """A column as plain Python values, None where NA."""
    values = series.astype(object).tolist()
    if series.dtype == object or isinstance(series.dtype, pd.StringDtype) or series.dtype == "str":
        return [plain(v) for v in values]
    mask = series.isna().tolist()
    return [None if missing else plain(v) for v, missing in zip(values, mask, strict=True)]


def rows(df: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """Every row as a dict of its non-NA cells, with the row index under ``"row"``."""
    names = list(df.columns)
    columns = [_plain_column(df[name]) for name in names]
    for index, values in zip(df.index.tolist(), zip(*columns, strict=True), strict=True):
        row: dict[str, Any] = {"row": int(index)}
        row.update((name, value) for name, value in zip(names, values, strict=True) if value is not None)
        yield row


@dataclass
class Capture:
    """One loaded capture with a label for output, and its rows as dicts (built once, on first use)."""

    df: pd.DataFrame
    label: str = "capture"
    path: str = ""
    _rows: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def records(self) -> list[dict[str, Any]]:
        """All rows as dicts, in capture order (computed once)."""
        if self._rows is None:
            self._rows = list(rows(self.df))
        return self._rows

    def replies(self) -> dict[int, dict[str, Any]]:
        """The reply row of each answered request, keyed by the request's row index."""
        out: dict[int, dict[str, Any]] = {}
        for row in self.records:
            if row.get("is_reply") and row.get("reply_to") is not None:
                out.setdefault(int(row["reply_to"]), row)
        return out


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
