"""The teaching notebooks: committed without outputs, in step with their sources, and they run.

Each notebook is executed top to bottom by a real Jupyter kernel (ipykernel on this interpreter,
started by nbclient) with ``notebooks/`` as the working directory, as Jupyter would run it for a
reader. A cell that raises fails the test with the cell's traceback. The kernel is always
ipykernel on the interpreter running the tests: a ``python3`` kernelspec installed elsewhere (for
example in ``~/.local/share/jupyter``) is not used.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from traitlets import default

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ("01-vhost-user-basics", "02-device-state-migration", "03-analyze-your-capture")
TEMPLATE = "03-analyze-your-capture"
CELL_TIMEOUT_S = 120
PLOTLY_MIME = "application/vnd.plotly.v1+json"


@functools.cache
def _builder() -> ModuleType:
    """notebooks/build.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("notebook_build", NOTEBOOKS / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class ThisInterpreterKernel(AsyncKernelManager):
    """Starts ipykernel's own ``python3`` kernel (``sys.executable``), ignoring installed kernelspecs."""

    @default("kernel_spec_manager")
    def _kernel_spec_manager_default(self) -> KernelSpecManager:
        return KernelSpecManager(kernel_dirs=[])


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def _execute(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    client = NotebookClient(
        nb,
        kernel_name="python3",
        kernel_manager_class=ThisInterpreterKernel,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    return nb


def _with_parameters(nb: nbformat.NotebookNode, **values: object) -> nbformat.NotebookNode:
    """The notebook with its ``parameters`` cell replaced by assignments of ``values`` (as papermill does)."""
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    return nb


def _figures(nb: nbformat.NotebookNode) -> int:
    return sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if PLOTLY_MIME in output.get("data", {})
    )


def _text_outputs(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_every_source_has_its_notebook() -> None:
    built = sorted(path.stem for path in _builder().sources())
    committed = sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))
    assert built == committed == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_has_no_outputs(name: str) -> None:
    nb = _read(name)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {cell.id} has outputs"
            assert cell.execution_count is None, f"cell {cell.id} has an execution count"


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_built_from_its_source(name: str) -> None:
    builder = _builder()
    assert builder.up_to_date(builder.SOURCES / f"{name}.py"), (
        "the notebook differs from notebooks/src: run .venv/bin/python notebooks/build.py"
    )


def test_builder_reads_markers_and_tags() -> None:
    cells = _builder().parse(
        'header only for the file\n# %% [markdown]\n# # Title\n#\n# text\n# %% tags=["parameters"]\nX = 1\n# %%\n\n'
    )
    assert [(c.kind, c.text(), c.tags) for c in cells] == [
        ("markdown", "# Title\n\ntext", []),
        ("code", "X = 1", ["parameters"]),
    ]


def test_builder_rejects_markdown_that_is_not_a_comment() -> None:
    with pytest.raises(ValueError, match="line 3"):
        _builder().parse("# %% [markdown]\n# fine\nnot a comment\n")


def test_template_starts_with_a_parameters_cell() -> None:
    nb = _read(TEMPLATE)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].metadata.get("tags") == ["parameters"]
    assert code[0].source.startswith('CAPTURE = "../samples/')
    assert "CAPTURE2 = " in code[0].source


def test_notebooks_use_the_python3_kernel() -> None:
    for name in NAMES:
        assert _read(name).metadata["kernelspec"]["name"] == "python3"


def test_the_kernel_runs_on_this_interpreter() -> None:
    spec = ThisInterpreterKernel(kernel_name="python3").kernel_spec
    assert spec.argv[0] == sys.executable


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name: str) -> None:
    nb = _execute(_read(name))
    if name != NAMES[0]:
        assert _figures(nb) > 0, "no plotly figure was drawn"


@pytest.mark.slow
def test_template_on_a_capture_without_migration() -> None:
    nb = _with_parameters(_read(TEMPLATE), CAPTURE="../samples/dpdk-testpmd.pcapng", CAPTURE2=None)
    _execute(nb)
    text = _text_outputs(nb)
    assert "no device-state transfer" in text
    assert "no second capture" in text
