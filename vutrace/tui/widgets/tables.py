"""DataTable helpers: cells as plain text (capture data may contain "[", which DataTable reads as markup)."""

from __future__ import annotations

from rich.text import Text


def plain(*values: object) -> tuple[Text, ...]:
    """One table row of plain-text cells."""
    return tuple(Text(str(v)) for v in values)
