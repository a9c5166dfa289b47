"""Every research notebook runs top to bottom, its pair is in sync, and its Chinese labels render.

The notebooks are ``notebooks/NN_*.py`` (jupytext percent format, the source of truth) paired with
``notebooks/NN_*.ipynb`` (no outputs). Each test reads the ``.py``, executes it with nbclient in a fresh
``python3`` kernel of this interpreter (jupyter_client starts the native kernel with ``sys.executable``) and
fails on any cell error or a cell running longer than ``JIANGLIAN_NOTEBOOK_CELL_TIMEOUT`` seconds (default 600).
Executed notebooks are written to ``test-output/notebooks/`` (git-ignored) for review, also when they fail.

The notebooks run against the private demo store (``JIANGLIAN_NOTEBOOK_DATA=demo``; ``NEO4J_*`` and
``JIANGLIAN_STORE`` are removed from the kernel's environment). One more test runs the graph tour against the
session's real Neo4j (``neo4j_uri``) holding the demo data, read-only, which is how a researcher with
``NEO4J_URI`` set uses them.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
OUT = REPO / "test-output" / "notebooks"
CELL_TIMEOUT = int(os.environ.get("JIANGLIAN_NOTEBOOK_CELL_TIMEOUT", "600"))
# matplotlib's warning when a character has no glyph in the font: the label would render as a box
MISSING_GLYPH = "missing from font"


def _kernel_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_") and k != "JIANGLIAN_STORE"}
    env["JIANGLIAN_NOTEBOOK_DATA"] = "demo"
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env.update(extra or {})
    return env


def _execute(nb: nbformat.NotebookNode, name: str, env: Mapping[str, str]) -> tuple[nbformat.NotebookNode, float]:
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    started = time.perf_counter()
    try:
        client.execute(env=dict(env))
    finally:
        OUT.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, OUT / f"{name}.ipynb")
    return nb, time.perf_counter() - started


def _outputs(nb: nbformat.NotebookNode) -> Iterator[tuple[int, dict]]:
    for number, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                yield number, output


def _text(output: Mapping) -> str:
    if output.get("output_type") == "stream":
        return str(output.get("text", ""))
    data = output.get("data", {})
    return str(data.get("text/plain", "")) + str(data.get("text/html", ""))


def test_notebooks_exist() -> None:
    names = [p.stem for p in NOTEBOOKS]
    assert names[:4] == ["01_graph_tour", "02_embeddings", "03_ranking_quality", "04_campaign_planning"], names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_pair_in_sync(path: Path) -> None:
    """The committed ``.ipynb`` has exactly the cells of the ``.py`` (``jupytext --sync`` was run)."""
    paired = path.with_suffix(".ipynb")
    assert paired.is_file(), f"{paired.name} is missing: run `jupytext --sync {path.relative_to(REPO)}`"
    source = jupytext.read(path)
    committed = nbformat.read(paired, as_version=4)
    cells = [(c.cell_type, c.source) for c in source.cells]
    assert [(c.cell_type, c.source) for c in committed.cells] == cells, (
        f"{paired.name} differs from {path.name}: run `jupytext --sync {path.relative_to(REPO)}`")
    for cell in committed.cells:
        assert not cell.get("outputs"), f"{paired.name} is committed with outputs; clear them"


def test_kernel_is_this_interpreter() -> None:
    """The ``python3`` kernel is the project's virtualenv, where the packages are installed."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print(sys.executable)")])
    executed, _ = _execute(nb, "kernel_check", _kernel_env())
    printed = executed.cells[0].outputs[0]["text"].strip()
    assert Path(printed).resolve() == Path(sys.executable).resolve()


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path) -> None:
    nb, seconds = _execute(jupytext.read(path), path.stem, _kernel_env())
    print(f"{path.stem}: {seconds:.1f} s")
    outputs = list(_outputs(nb))
    assert not [o for _, o in outputs if o.get("output_type") == "error"]
    missing = [(n, _text(o)) for n, o in outputs if MISSING_GLYPH in _text(o)]
    assert not missing, f"Chinese text rendered without a CJK font (cells {[n for n, _ in missing]})"
    images = [n for n, o in outputs if "image/png" in o.get("data", {})]
    assert images, "the notebook drew no plot"
    assert "store: memory" in "".join(_text(o) for _, o in outputs), "the notebook did not use the embedded store"


@pytest.mark.neo4j
@pytest.mark.slow
def test_graph_tour_on_neo4j(neo4j_uri: str) -> None:
    """With ``NEO4J_URI`` set, the tour reads Neo4j (holding the demo data), read-only, and runs Cypher."""
    from demo.research import demo_dataset_dir
    from graph.dataset import load_dataset
    from graph.neo4j_store import Neo4jStore

    extra = {"NEO4J_URI": neo4j_uri, "NEO4J_DATABASE": "neo4j", "JIANGLIAN_NOTEBOOK_DATA": "store"}
    for key in ("NEO4J_USER", "NEO4J_PASSWORD"):
        if os.environ.get("NEO4J_URI") and os.environ.get(key):
            extra[key] = os.environ[key]
    with Neo4jStore.connect(neo4j_uri, user=extra.get("NEO4J_USER", "neo4j"),
                            password=extra.get("NEO4J_PASSWORD", "")) as store:
        store.ensure_schema()
        store.clear()
        load_dataset(store, demo_dataset_dir())
    path = NOTEBOOK_DIR / "01_graph_tour.py"
    try:
        nb, seconds = _execute(jupytext.read(path), "01_graph_tour.neo4j", _kernel_env(extra))
    finally:
        with Neo4jStore.connect(neo4j_uri, user=extra.get("NEO4J_USER", "neo4j"),
                                password=extra.get("NEO4J_PASSWORD", "")) as store:
            store.clear()
    print(f"01_graph_tour on Neo4j: {seconds:.1f} s")
    text = "".join(_text(o) for _, o in _outputs(nb))
    assert "store: neo4j" in text
    assert "NEO4J_URI is not set" not in text
    assert "worker" in text and "skill" in text  # columns of the Cypher results
