"""The help screen (?): every key binding, by view, and the filter syntax."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Everywhere",
        (
            ("?  F1", "this help"),
            ("/", "display filter (Enter applies, Escape goes back)"),
            ("1 … 8", "Messages, Conversation, Timeline, Throughput, Session, Checks, Connections, Ladder"),
            ("Tab  Shift+Tab", "next / previous pane"),
            ("\\", "maximize the pane (Escape restores)"),
            ("f", "follow the connection of the record under the cursor"),
            ("Ctrl+G", "go to a time or a record number"),
            ("|", "two captures: side by side or merged by time"),
            ("Ctrl+P", "command palette (also: change theme)"),
            ("q  Ctrl+Q", "quit"),
        ),
    ),
    (
        "Record list",
        (
            ("↑ ↓  j k", "previous / next record"),
            ("PgUp PgDn  Space", "page"),
            ("Home End  g G", "first / last record (End also tails a live capture)"),
            ("Ctrl+T", "tail: follow the newest record"),
            ("m a-z", "mark the record with a letter"),
            ("' a-z", "go back to a marked record"),
            ("Enter", "go to the record's fields"),
        ),
    ),
    (
        "Conversation, Ladder, Session",
        (
            ("[  ]", "previous / next connection"),
            ("a", "conversation, ladder: only the records the filter shows, or all of the connection"),
            ("c", "conversation: all channels, main, back-end channel, state stream"),
            ("Enter", "show the record in the Messages view"),
        ),
    ),
    (
        "Connections",
        (
            ("Enter", "the connection in the Conversation view"),
            ("l", "the connection in the Ladder view"),
            ("s  r", "sort by the next column, reverse the order (or click a column title)"),
            ("a", "analyse a very big capture anyway"),
        ),
    ),
    (
        "Timeline, Throughput, Checks",
        (
            ("Enter", "show the phase's, stream's or finding's record"),
            ("a", "analyse a very big capture anyway"),
        ),
    ),
)

FILTER_HELP = (
    "Filters are the -Y expressions of the command line: a pandas query over the record columns, e.g.\n"
    "  request == 'SET_MEM_TABLE' and nfds > 0\n"
    "  channel == 'backend' and is_reply\n"
    "  latency_ns > 1_000_000\n"
    "  error.notna()\n"
    "Columns: ts_ns conn channel sender request request_id is_reply need_reply flags size nfds fds\n"
    "nbytes reply_to latency_ns error warning, and the decoded fields (features, vring, num, ...)."
)


def help_text() -> str:
    lines = []
    for title, keys in KEYS:
        lines.append(title)
        lines.extend(f"  {key:<18} {what}" for key, what in keys)
        lines.append("")
    lines.append(FILTER_HELP)
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    """Keys and filter syntax; any of Escape, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%; max-width: 100; height: 90%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "vutrace keys (Escape closes)"
            yield Static(help_text(), markup=False)
