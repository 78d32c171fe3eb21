"""Display filters: a pandas query expression over the loaded columns (``-Y`` on the command line).

Examples: ``request == 'SET_DEVICE_STATE_FD'``, ``channel == 'backend' and is_reply``,
``nfds > 0``, ``latency_ns > 1_000_000``, ``error.notna()``.
"""

from __future__ import annotations

import pandas as pd


class FilterError(ValueError):
    """A filter expression that does not parse or does not give one true/false per row; one-line message."""


def apply_filter(frame: pd.DataFrame, expression: str | None) -> pd.DataFrame:
    """The rows of ``frame`` for which ``expression`` is true (all rows when it is empty)."""
    if not expression or not expression.strip():
        return frame
    try:
        mask = frame.eval(expression, engine="python")
    except Exception as error:  # pandas raises many kinds (SyntaxError, UndefinedVariableError, TypeError, ...)
        raise FilterError(f"bad filter {expression!r}: {_one_line(error)}") from None
    if not isinstance(mask, pd.Series) or len(mask) != len(frame):
        raise FilterError(f"bad filter {expression!r}: it does not give one true/false value per record")
    if mask.dtype == "boolean":
        mask = mask.fillna(False).astype(bool)
    if mask.dtype != bool:
        raise FilterError(f"bad filter {expression!r}: it gives {mask.dtype} values, not true/false")
    return frame[mask.to_numpy()]


def _one_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    name = type(error).__name__
    return f"{name}: {text[0]}" if text else name
