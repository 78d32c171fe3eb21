"""The display filter box: the CLI's ``-Y`` expressions (a pandas query), checked as you type.

The box turns green when the expression is valid and red when not (with the reason under it);
Enter applies it, Escape goes back to the list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Input, Static

from vutrace.tui.messages import FilterSubmitted

PLACEHOLDER = "/ filter, e.g. request == 'SET_MEM_TABLE' and nfds > 0"

Checker = Callable[[str], str | None]


class FilterBar(Vertical):
    """An input for the filter expression and a line for its error."""

    DEFAULT_CSS = """
    FilterBar { height: auto; }
    FilterBar > Input { border: none; height: 1; padding: 0 1; background: $boost; }
    FilterBar > Input:focus { border: none; background: $boost; }
    FilterBar > Input.-filter-ok { background: $success-muted; }
    FilterBar > Input.-filter-bad { background: $error-muted; }
    FilterBar > #filter-error { height: auto; max-height: 2; color: $text-error; padding: 0 1; display: none; }
    FilterBar > #filter-error.-shown { display: block; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "leave", "Back to the list", show=False)]

    def __init__(self, checker: Checker, **kw) -> None:
        super().__init__(**kw)
        self.checker = checker
        self.applied = ""

    def compose(self) -> ComposeResult:
        yield Input(placeholder=PLACEHOLDER, id="filter-input", select_on_focus=False)
        yield Static("", id="filter-error", markup=False)

    @property
    def input(self) -> Input:
        return self.query_one(Input)

    @on(Input.Changed)
    def check(self, event: Input.Changed) -> None:
        event.stop()
        self.show_check(event.value)

    def show_check(self, text: str) -> str | None:
        """Colour the box for ``text``; returns the error (None when valid)."""
        error = self.checker(text) if text.strip() else None
        self.input.set_class(bool(text.strip()) and error is None, "-filter-ok")
        self.input.set_class(error is not None, "-filter-bad")
        message = self.query_one("#filter-error", Static)
        message.update(_reason(error, text) if error else "")
        message.set_class(error is not None, "-shown")
        return error

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        event.stop()
        if self.show_check(event.value) is not None:
            return
        self.applied = event.value.strip()
        self.post_message(FilterSubmitted(self.applied))

    @property
    def valid(self) -> bool | None:
        """True (green), False (red) or None (empty box)."""
        if self.input.has_class("-filter-ok"):
            return True
        return False if self.input.has_class("-filter-bad") else None

    def action_leave(self) -> None:
        self.input.value = self.applied
        self.show_check(self.applied)
        self.post_message(FilterSubmitted(self.applied))


def _reason(error: str, expression: str) -> str:
    """The error without the expression it repeats (the box above shows it)."""
    return error.removeprefix(f"bad filter {expression!r}: ")
