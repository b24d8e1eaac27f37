"""The tutorial notebooks (`notebooks/*.ipynb`) run, and are committed clean.

Each notebook is executed with nbclient in a `python3` kernel (the one of the
environment running the tests: its kernelspec says `python`, which
jupyter_client replaces with this interpreter), with `notebooks/` as the
working directory, as Jupyter opens them, and TMPDIR under pytest's tmp_path
(the notebooks write their files only to `tempfile.mkdtemp()`). A committed
notebook has no outputs and no execution counts, imports only spiralsim,
pandas, numpy, matplotlib, IPython and the standard library, starts with a
parameter cell and ends with exercises whose answers are collapsed.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NAMES = ("01_death_spiral", "02_pool_sizing", "03_defences", "04_metastability_map", "05_postmortem")
ALLOWED = {"spiralsim", "pandas", "numpy", "matplotlib", "IPython"}
KERNEL = "python3"
TIMEOUT_S = 600  # per cell


def read(name: str):
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def execute(nb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every cell of `nb` in place; raises nbclient's CellExecutionError on the first failing cell."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel inherits it: tempfile writes there
    nbclient.NotebookClient(nb, timeout=TIMEOUT_S, kernel_name=KERNEL,
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()


def listing() -> set[str]:
    """What a notebook must not add to: the repository's top level and notebooks/."""
    return {p.name for p in ROOT.iterdir()} | {f"notebooks/{p.name}" for p in NOTEBOOKS.iterdir()}


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def imported_modules(source: str) -> set[str]:
    """Top-level names of the modules a cell imports (IPython magics and shell lines left out)."""
    python = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    found = set()
    for node in ast.walk(ast.parse(python)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def is_collapsed_answer(cell) -> bool:
    """A markdown `<details>` block, or a code cell hidden by `{"jupyter": {"source_hidden": true}}`."""
    if cell.cell_type == "markdown":
        return "<details>" in cell.source and "<summary>" in cell.source and "</details>" in cell.source
    return bool(cell.metadata.get("jupyter", {}).get("source_hidden"))


def test_the_notebooks_are_the_five_tutorials():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == list(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, tmp_path, monkeypatch):
    nb = read(name)
    before = listing()
    execute(nb, tmp_path, monkeypatch)
    errors = [o for c in code_cells(nb) for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert listing() == before, "a notebook wrote into the repository"


def test_the_kernel_is_this_interpreter(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print(sys.prefix)")])
    execute(nb, tmp_path, monkeypatch)
    assert nb.cells[0].outputs[0]["text"].strip() == sys.prefix


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_without_outputs(name):
    nb = read(name)
    nbformat.validate(nb)
    for i, cell in enumerate(code_cells(nb)):
        assert cell.outputs == [], f"{name}: code cell {i} has outputs"
        assert cell.execution_count is None, f"{name}: code cell {i} has an execution count"
        assert "execution" not in cell.metadata, f"{name}: code cell {i} has execution timings"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_imports_only_the_allowed_libraries(name):
    allowed = ALLOWED | set(sys.stdlib_module_names)
    imported = set().union(*(imported_modules(c.source) for c in code_cells(read(name))))
    assert "spiralsim" in imported
    assert imported <= allowed, f"{name} imports {sorted(imported - allowed)}"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_has_parameters_and_collapsed_answers(name):
    nb = read(name)
    assert "parameters" in code_cells(nb)[0].metadata.get("tags", []), f"{name}: no parameter cell first"
    heading = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "## Exercises" in c.source]
    assert heading, f"{name}: no Exercises section"
    answers = [c for c in nb.cells[heading[-1] + 1:] if is_collapsed_answer(c)]
    assert 2 <= len(answers) <= 3, f"{name}: {len(answers)} collapsed answers"
    assert is_collapsed_answer(nb.cells[-1]), f"{name}: does not end with an answer"
