"""The Textual TUI: ``run(paths)`` to explore captures, ``run_live(path)`` to watch one being written.

The proxy's ``--tui`` calls ``run_live(capture_path)`` while it writes the capture; the TUI follows
the file (``vutrace.capture.follow``), so the proxy's forwarding never waits for the screen.
"""

from __future__ import annotations

import os
from collections.abc import Sequence


def run(paths: Sequence[str | os.PathLike[str]], *, merge: bool = False) -> None:
    """Open one capture, or a source and a destination capture (side by side, or ``merge``d by time)."""
    from vutrace.tui.app import VutraceApp

    VutraceApp(list(paths), merge=merge).run()


def run_live(capture_path: str | os.PathLike[str], *more: str | os.PathLike[str], merge: bool = False) -> None:
    """Follow captures while they are written (blocks until the user quits); new records show within 0.5 s."""
    from vutrace.tui.app import VutraceApp

    VutraceApp([capture_path, *more], live=True, merge=merge).run()
