"""The result of decoding one device-state stream, the same shape for every format.

A decoder returns a ``StateDecode``: the format it read, whether the stream really is in that
format (``recognised``), a one-line summary, the structured content (the format's own dataclass,
with ``to_dict()``), flat rows (dicts with ``offset``, ``length``, ``kind`` and fields, one per
decoded item, for DataFrames), an ``error`` where decoding stopped (everything before it is kept)
and ``warnings`` about a state that decodes but looks wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

PREVIEW_BYTES = 32
"""How many leading bytes ``preview`` shows."""


class Content(Protocol):
    """A format's structured result."""

    def to_dict(self) -> dict[str, Any]: ...


def preview(data: bytes) -> str:
    """The first bytes as hex, with an ellipsis when there are more."""
    shown = data[:PREVIEW_BYTES].hex(" ")
    return shown + (" …" if len(data) > PREVIEW_BYTES else "")


def error_row(offset: int, size: int, message: str) -> dict[str, Any]:
    """The flat row for the bytes a decoder could not read: from ``offset`` to the end."""
    return {"offset": offset, "length": max(size - offset, 0), "kind": "error", "error": message}


@dataclass
class StateDecode:
    format: str
    """The decoder's ``NAME``; ``unknown`` when no decoder recognised the stream, ``empty`` for no bytes."""
    title: str
    size: int
    recognised: bool
    """Whether the stream is in this format (e.g. a complete parse, or the format's magic)."""
    summary: str
    content: Content | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    preview: str = ""
    attempts: list[StateDecode] = field(default_factory=list)
    """For ``unknown``: the partial decodes of the formats the stream started like."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "title": self.title,
            "size": self.size,
            "recognised": self.recognised,
            "summary": self.summary,
            "error": self.error,
            "warnings": list(self.warnings),
            "preview": self.preview,
            "content": self.content.to_dict() if self.content is not None else None,
            "attempts": [a.to_dict() for a in self.attempts],
        }
