"""Go to (Ctrl+G): a time in seconds since the start of the capture, or ``#N`` for record N."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


@dataclass(frozen=True)
class Target:
    seconds: float | None = None
    record: int | None = None
    """1-based record number."""


def parse_target(text: str) -> Target | None:
    """``12.5`` / ``+12.5s`` -> a time; ``#42`` -> record 42; None if it is neither."""
    text = text.strip()
    try:
        if text.startswith("#"):
            number = int(text[1:])
            return Target(record=number) if number >= 1 else None
        return Target(seconds=float(text.removeprefix("+").removesuffix("s")))
    except ValueError:
        return None


class GotoScreen(ModalScreen[Target | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    DEFAULT_CSS = """
    GotoScreen { align: center middle; }
    GotoScreen > Vertical { width: 60; height: auto; border: round $primary; background: $surface; padding: 0 1; }
    GotoScreen Input.-invalid { border: tall $error; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Go to a time (seconds since the start, e.g. 1.25) or a record (#42)")
            yield Input(placeholder="1.25 or #42")

    @on(Input.Submitted)
    def done(self, event: Input.Submitted) -> None:
        target = parse_target(event.value)
        if target is None:
            event.input.add_class("-invalid")
            return
        self.dismiss(target)
