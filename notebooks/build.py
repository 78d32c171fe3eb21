"""Build the teaching notebooks (``notebooks/*.ipynb``) from their sources in ``notebooks/src/``.

The sources are plain Python files in the "percent" cell format (the one jupytext and most
editors understand), so they read and diff like code; the ``.ipynb`` files are generated from
them with no outputs and no execution counts::

    .venv/bin/python notebooks/build.py           # rewrite the notebooks whose source changed
    .venv/bin/python notebooks/build.py --check   # exit 1 if a notebook is not what its source gives

Cell markers: ``# %% [markdown]`` starts a markdown cell (each line is a comment, whose leading
``# `` is removed, or empty), ``# %%`` a code cell, ``# %% tags=["parameters"]`` a code cell with tags.
Lines before the first marker are a header for the source file only (not part of the notebook).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"
MARKER = re.compile(r"^# %%(?P<markdown> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


@dataclass
class Cell:
    kind: str
    """"markdown" or "code"."""
    lines: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = self.lines
        if self.kind == "markdown":
            lines = [_uncomment(line) for line in lines]
        return "\n".join(lines).strip("\n")


def _uncomment(line: str) -> str:
    if line in ("#", ""):
        return ""
    if line.startswith("# "):
        return line[2:]
    raise ValueError(f"markdown line is not a comment: {line!r}")


def parse(text: str) -> list[Cell]:
    """The cells of a percent-format source (the header before the first marker is dropped)."""
    cells: list[Cell] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = MARKER.match(line)
        if match:
            tags = json.loads(match["tags"]) if match["tags"] else []
            cells.append(Cell("markdown" if match["markdown"] else "code", tags=tags))
        elif cells:
            try:
                cells[-1].lines.append(line)
                if cells[-1].kind == "markdown":
                    _uncomment(line)
            except ValueError as error:
                raise ValueError(f"line {number}: {error}") from None
    return [cell for cell in cells if cell.text()]


def notebook(source: Path) -> nbformat.NotebookNode:
    """The notebook a source file gives: outputs empty, cell ids numbered, the python3 kernel."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    for index, cell in enumerate(parse(source.read_text())):
        if cell.kind == "markdown":
            new = nbformat.v4.new_markdown_cell(cell.text())
        else:
            new = nbformat.v4.new_code_cell(cell.text())
        new.id = f"cell-{index:03d}"
        if cell.tags:
            new.metadata["tags"] = cell.tags
        nb.cells.append(new)
    nbformat.validate(nb)
    return nb


def target(source: Path) -> Path:
    return HERE / f"{source.stem}.ipynb"


def rendered(source: Path) -> str:
    return nbformat.writes(notebook(source)) + "\n"


def content(nb: nbformat.NotebookNode) -> tuple:
    """What a notebook says, independent of how nbformat serialises it: metadata and the cells."""
    cells = tuple(
        (cell.cell_type, cell.id, cell.source, cell.metadata, cell.get("outputs"), cell.get("execution_count"))
        for cell in nb.cells
    )
    return nb.metadata, cells


def up_to_date(source: Path) -> bool:
    """The committed notebook holds exactly what its source builds (no outputs, no execution counts)."""
    path = target(source)
    if not path.exists():
        return False
    return content(nbformat.read(path, as_version=4)) == content(notebook(source))


def sources() -> list[Path]:
    return sorted(SOURCES.glob("*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report notebooks that differ from their source")
    args = parser.parse_args(argv)
    stale = []
    for source in sources():
        if up_to_date(source):
            continue
        path = target(source)
        stale.append(path)
        if not args.check:
            path.write_text(rendered(source))
            print(f"wrote {path.relative_to(HERE.parent)}")
    if args.check and stale:
        for path in stale:
            print(f"{path.relative_to(HERE.parent)} is out of date: run notebooks/build.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
