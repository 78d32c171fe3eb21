"""The status line: captures, how many records the filter shows, loading progress, live and tail state."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.widgets import Static


@dataclass
class Status:
    labels: list[str]
    shown: int = 0
    total: int = 0
    expression: str = ""
    loading: dict[str, float] = field(default_factory=dict)
    """Capture label -> fraction loaded, for the captures still loading."""
    live: bool = False
    tail: bool = False
    layout: str = ""
    """"merged" or "side by side" when two captures are open."""
    where: str = ""
    """The connection and time of the record under the cursor."""

    def text(self) -> str:
        parts = [" + ".join(self.labels)]
        if self.layout:
            parts.append(self.layout)
        parts.append(f"{self.shown:,}/{self.total:,} records" if self.expression else f"{self.total:,} records")
        if self.expression:
            parts.append(f"filter: {self.expression}")
        parts.extend(f"loading {label} {fraction:.0%}" for label, fraction in self.loading.items())
        if self.live:
            parts.append("LIVE" + (" · tail" if self.tail else ""))
        if self.where:
            parts.append(self.where)
        return " │ ".join(parts)


class StatusBar(Static):
    """One line at the top of the screen."""

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    def __init__(self, status: Status, **kw) -> None:
        super().__init__("", markup=False, **kw)
        self.status = status

    def show(self) -> None:
        self.update(self.status.text())
