"""Messages the TUI's widgets and workers send each other (Textual ``Message`` dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from textual.message import Message


@dataclass
class RecordHighlighted(Message):
    """The cursor of a record list is on a record of capture ``part`` (row ``row``), or on none."""

    part: int | None
    row: int | None


@dataclass
class JumpToRecord(Message):
    """Show a record in the Messages view (from the conversation, timeline or checks views)."""

    part: int
    row: int


@dataclass
class FollowConnection(Message):
    """Show connection ``conn`` of capture ``part`` in the Conversation and Ladder views, and switch to ``tab``
    ("conversation" or "ladder") if given."""

    part: int
    conn: int
    tab: str | None = None


@dataclass
class FieldHighlighted(Message):
    """The detail tree is on a field; ``span`` names its bytes (``dissectors.fieldmap``), None for none."""

    span: str | None


@dataclass
class LoadProgress(Message):
    """A capture is loading: ``fraction`` done (0..1)."""

    part: int
    fraction: float

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LoadProgress) and message.part == self.part


@dataclass
class CaptureLoaded(Message):
    """The first records (``complete`` False) or all records of capture ``part`` are loaded."""

    part: int
    frame: pd.DataFrame
    complete: bool
    warnings: list[str]


@dataclass
class LoadFailed(Message):
    part: int
    error: str


@dataclass
class RecordsAppended(Message):
    """A live capture grew by ``frame``."""

    part: int
    frame: pd.DataFrame


@dataclass
class FilterSubmitted(Message):
    """The user entered a display filter ("" clears it)."""

    expression: str
