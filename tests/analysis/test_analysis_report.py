"""The HTML report renders in a real browser: headless Chromium loads it offline without JavaScript errors,
every plotly figure draws its SVG, and a screenshot is kept next to the page (pytest's tmp_path)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from analysis_captures import VIRTIOFSD_PROTOCOL, destination, migration_pair, source

from vutrace.report.page import render
from vutrace.report.selection import Limits

CHROMIUM = shutil.which("chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=10000",
)
FIGURES = ("fig-timeline", "fig-ladder-0", "fig-ladder-1", "fig-throughput")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (scripts/install-debs installs it)"),
]


def chromium(page: Path, profile: Path, *action: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *action, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def console_errors(stderr: str) -> list[str]:
    """Console messages that are errors: uncaught exceptions and console.error output."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line and re.search(r"Uncaught|Error", line)]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migration report with findings (the destination restarts ring 1 at a different base)."""
    directory = tmp_path_factory.mktemp("report")
    captures = migration_pair(directory, source(), destination(bases=(5, 8), protocol=VIRTIOFSD_PROTOCOL))
    path = directory / "report.html"
    path.write_text(render(list(captures)), encoding="utf-8")
    return path


def test_report_renders_without_javascript_errors(page: Path, tmp_path: Path) -> None:
    result = chromium(page, tmp_path / "profile", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert console_errors(result.stderr) == []
    dom = result.stdout
    ids = re.findall(r'\sid="([^"]+)"', dom)
    assert len(ids) == len(set(ids)), "element ids are unique (plotly draws into the first element with its id)"
    for figure in FIGURES:
        block = dom.split(f'id="{figure}"', 1)
        assert len(block) == 2, f"figure {figure} missing"
        assert 'class="main-svg"' in block[1].split('class="plotly-graph-div"', 1)[0], f"{figure} drew no SVG"
    assert "migration.ring-base" in dom


def test_report_of_a_big_capture_renders(tmp_path: Path) -> None:
    """Above the record limit (lowered here): the gap rows, the notes and the rate panels draw without errors."""
    captures = migration_pair(tmp_path, source(), destination(bases=(5, 8), protocol=VIRTIOFSD_PROTOCOL))
    page = tmp_path / "big.html"
    page.write_text(render(list(captures), limits=Limits(records=30, head=10, tail=2)), encoding="utf-8")
    result = chromium(page, tmp_path / "profile", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert console_errors(result.stderr) == []
    dom = result.stdout
    assert dom.count("Showing 30 of") == 2 and 'class="gap"' in dom
    timeline = dom.split('id="fig-timeline"', 1)[1].split("<h2", 1)[0]
    assert 'class="main-svg"' in timeline
    drawn = re.findall(r'class="annotation-text"[^>]*data-unformatted="([^"]*records per second)"', timeline)
    assert len(drawn) == 2, "one rate panel per side"


def test_report_screenshot(page: Path, tmp_path: Path) -> None:
    shot = page.with_suffix(".png")
    result = chromium(page, tmp_path / "profile", "--window-size=1400,2400", f"--screenshot={shot}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert console_errors(result.stderr) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000, "a rendered page, not a blank one"


def test_console_errors_are_seen(tmp_path: Path) -> None:
    """The error scan works: a page that throws is caught."""
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    result = chromium(broken, tmp_path / "profile", "--dump-dom")
    assert console_errors(result.stderr)
