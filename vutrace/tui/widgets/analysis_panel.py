"""Base of the analysis views: compute the results in a worker thread when the view is shown, then draw them."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Static, Tabs
from textual.worker import get_current_worker

from vutrace.tui.results import Results, too_big

if TYPE_CHECKING:
    from vutrace.tui.app import VutraceApp


class AnalysisPanel(Vertical):
    """A view of ``Results``; subclasses fill ``prepare`` (in the worker) and ``show`` (on the UI thread)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("a", "analyse_anyway", "Analyse", show=False)]

    DEFAULT_CSS = """
    AnalysisPanel > .analysis-note { color: $text-muted; padding: 0 1; height: auto; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.shown_version: tuple[int, ...] | None = None
        self.allowed = False

    @property
    def vutrace(self) -> VutraceApp:
        return self.app  # type: ignore[return-value]

    def update_view(self) -> None:
        """Bring the view up to date with the captures (called when its tab is shown)."""
        parts = self.vutrace.parts
        if not all(len(p) for p in parts) or not all(p.complete for p in parts):
            self.note("the captures are still loading")
            return
        if too_big(parts) and not self.allowed:
            total = sum(len(p) for p in parts)
            self.note(
                f"{total:,} records: the analysis holds each of them in memory (about 1 KiB a record). "
                "Press a to analyse anyway."
            )
            return
        if self.shown_version == self.vutrace.data_version():
            return
        self.loading = True
        self.run_worker(self._compute, thread=True, exclusive=True, group="analysis")

    def _compute(self) -> None:
        results = self.vutrace.analysis()
        self.prepare(results)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._finish, results)

    async def _finish(self, results: Results) -> None:
        self.loading = False
        self.shown_version = results.version
        await self.show(results)
        self.call_after_refresh(self._focus_if_shown)

    def _focus_if_shown(self) -> None:
        """Move the focus from the tab strip to the results, when they are the view on screen."""
        tables = self.query(DataTable)
        if isinstance(self.screen.focused, Tabs) and self.is_on_screen and tables:
            tables.first().focus(scroll_visible=False)

    def action_analyse_anyway(self) -> None:
        self.allowed = True
        self.update_view()

    def note(self, text: str) -> None:
        """Show ``text`` in place of results."""
        self.shown_version = None
        self.call_later(self.replace, Static(text, classes="analysis-note", markup=False))

    async def replace(self, *widgets: Widget) -> None:
        """Show ``widgets`` in place of the current content (the old content is gone before they come).

        If the focus was in the old content, it moves to the first table of the new one.
        """
        focused = self.screen.focused
        had_focus = focused is not None and self in focused.ancestors
        await self.remove_children()
        await self.mount_all(widgets)
        tables = self.query(DataTable)
        if had_focus and tables:
            tables.first().focus(scroll_visible=False)

    def prepare(self, results: Results) -> None:
        """Compute what ``show`` needs (runs in a worker thread)."""

    async def show(self, results: Results) -> None:
        raise NotImplementedError
