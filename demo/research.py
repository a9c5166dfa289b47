"""Helpers for the research notebooks: open a store to explore, copy it for what-if runs, render Chinese plots.

The notebooks in ``notebooks/`` run against the embedded demo store by default and against Neo4j when
``NEO4J_URI`` is set. :func:`open_research_store` makes that choice in one place, so each notebook opens its
data with one call and holds no copy of the set-up:

- without ``NEO4J_URI``: the deterministic Yancheng demo dataset (:func:`demo.generator.generate`, cached on disk
  per scale, seed and generator version) loaded into an in-memory :class:`~graph.memory.MemoryStore` that
  nothing else shares, so a notebook may write to it freely;
- with ``NEO4J_URI``: the Neo4j database named by the ``NEO4J_*`` settings (:mod:`graph.config`); an empty
  database gets the demo dataset first, a database holding workers is used as it is.

Notebooks that write (assignment what-ifs) work on :func:`scratch_copy`, never on a shared database.
:func:`configure_cjk_matplotlib` points matplotlib at an installed CJK font (Debian's ``fonts-noto-cjk``):
without one, Chinese labels render as empty boxes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from graph.config import StoreSettings, open_store
from graph.dataset import export_dataset, load_dataset
from graph.memory import MemoryStore
from graph.store import GraphStore

__all__ = [
    "CACHE_ENV",
    "CJK_FONT_PREFERENCE",
    "configure_cjk_matplotlib",
    "demo_dataset_dir",
    "neo4j_requested",
    "open_research_store",
    "research_cypher",
    "scratch_copy",
]

#: Setting naming the directory where generated demo datasets are cached (default: the system temp dir).
CACHE_ENV = "JIANGLIAN_RESEARCH_CACHE"

#: CJK font families tried in order; the first one installed wins (Simplified Chinese forms first).
CJK_FONT_PREFERENCE: tuple[str, ...] = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "Noto Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Noto Sans CJK TC",
    "Noto Sans CJK JP",
    "Source Han Sans",
    "Noto Serif CJK SC",
)

_MARKER = ".complete"
_FONT_FILE_HINTS = ("cjk", "sourcehan", "source-han", "wqy", "wenquanyi", "notosanssc", "notoserifsc")


def _generator_digest() -> str:
    """A short hash of the demo generator's source, so a changed generator never reuses a stale cache."""
    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in ("demo.py", "demo_vocab.py"):
        path = here / name
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def demo_dataset_dir(*, scale: float = 1.0, seed: int = 7, cache_dir: str | os.PathLike[str] | None = None,
                     env: Mapping[str, str] | None = None) -> Path:
    """The demo dataset for ``scale`` and ``seed`` as a directory of JSON Lines files, generated on first use.

    Parameters
    ----------
    scale, seed
        Passed to :func:`demo.generator.generate` (same values, same bytes).
    cache_dir
        Where datasets are kept; default ``$JIANGLIAN_RESEARCH_CACHE`` or ``<temp dir>/jianglian-research``.
    env
        The settings to read (default: the process environment).

    Returns
    -------
    Path
        A directory that :func:`graph.dataset.load_dataset` reads. The name holds a hash of the generator's
        source, so an edited generator gets a fresh directory.
    """
    from demo.generator import generate

    if not scale > 0:
        raise ValueError("scale must be positive")
    env = os.environ if env is None else env
    base = Path(cache_dir or env.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "jianglian-research")
    base.mkdir(parents=True, exist_ok=True)
    out = base / f"demo-scale{scale:g}-seed{seed}-{_generator_digest()}"
    if not (out / _MARKER).is_file():
        # generate beside the target and rename it into place, so two kernels starting at once never share files
        tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=base))
        try:
            generate(tmp, scale=scale, seed=seed)
            (tmp / _MARKER).write_text("ok\n", encoding="utf-8")
            if out.exists() and not (out / _MARKER).is_file():
                shutil.rmtree(out, ignore_errors=True)  # an interrupted older layout
            try:
                tmp.rename(out)
            except OSError:
                if not (out / _MARKER).is_file():  # not another process winning the race: a real error
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def neo4j_requested(env: Mapping[str, str] | None = None) -> bool:
    """Whether the notebooks should use Neo4j: ``NEO4J_URI`` is set and not empty.

    Examples
    --------
    >>> neo4j_requested({"NEO4J_URI": "bolt://127.0.0.1:7687"}), neo4j_requested({})
    (True, False)
    """
    env = os.environ if env is None else env
    return bool((env.get("NEO4J_URI") or "").strip())


def open_research_store(*, scale: float = 1.0, seed: int = 7, env: Mapping[str, str] | None = None,
                        load_demo_if_empty: bool = True) -> GraphStore:
    """The store a notebook explores: the embedded demo store, or Neo4j when ``NEO4J_URI`` is set.

    Parameters
    ----------
    scale, seed
        Which demo dataset to load (into the fresh embedded store, or into an empty Neo4j database).
    env
        The settings to read (default: the process environment): ``NEO4J_URI``, ``NEO4J_USER``,
        ``NEO4J_PASSWORD``, ``NEO4J_DATABASE`` as in the README.
    load_demo_if_empty
        Neo4j only: load the demo dataset when the database holds no worker.

    Returns
    -------
    GraphStore
        A :class:`~graph.memory.MemoryStore` without a data directory (nothing persists, nothing is locked)
        or a :class:`~graph.neo4j_store.Neo4jStore`. Close it when done (it is a context manager).

    Raises
    ------
    graph.errors.StoreUnavailable
        If Neo4j was asked for and does not answer.
    """
    env = os.environ if env is None else env
    if neo4j_requested(env):
        settings = replace(StoreSettings.from_env(env), store="neo4j")
        store = open_store(settings)
        try:
            if load_demo_if_empty and store.count_nodes("Worker") == 0:
                load_dataset(store, demo_dataset_dir(scale=scale, seed=seed, env=env))
        except BaseException:
            store.close()
            raise
        return store
    memory = MemoryStore(None)
    load_dataset(memory, demo_dataset_dir(scale=scale, seed=seed, env=env))
    return memory


def scratch_copy(store: GraphStore) -> MemoryStore:
    """An in-memory copy of the store's dataset rows (workers, enterprises, problems and the taxonomy).

    What-if runs write to the copy (invitations, outcomes) and leave the original untouched, whichever kind
    of store it is. Workflow nodes (matches, audit events, users) are not copied: the copy starts a fresh
    campaign over the same graph.
    """
    with tempfile.TemporaryDirectory(prefix="jianglian-scratch-") as tmp:
        export_dataset(store, tmp)
        copy = MemoryStore(None)
        load_dataset(copy, tmp)
    return copy


def research_cypher(query: str, params: Mapping[str, Any] | None = None, *,
                    env: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Run one read-only, parameterised Cypher statement against the configured Neo4j; rows as dicts.

    For researchers adapting the README's example queries in a notebook: pass values as ``params``
    (``$name`` in the query), never by formatting them into the text. Each call opens and closes its own
    driver, so it is meant for a handful of exploratory queries, not for loops.

    Raises
    ------
    RuntimeError
        If ``NEO4J_URI`` is not set (the embedded store has no Cypher).
    """
    env = os.environ if env is None else env
    if not neo4j_requested(env):
        raise RuntimeError("Cypher needs Neo4j: set NEO4J_URI (the embedded store has no query language)")
    from neo4j import GraphDatabase, RoutingControl

    settings = StoreSettings.from_env(env)
    auth = (settings.neo4j_user, settings.neo4j_password) if settings.neo4j_password else None
    with GraphDatabase.driver(settings.neo4j_uri, auth=auth) as driver:
        records, _, _ = driver.execute_query(
            query,  # researcher-supplied text, as typed into Neo4j Browser
            dict(params or {}),
            database_=settings.neo4j_database,
            routing_=RoutingControl.READ,
        )
    return [record.data() for record in records]


def _installed_fonts() -> list[tuple[str, str]]:
    from matplotlib import font_manager

    return [(entry.name, entry.fname) for entry in font_manager.fontManager.ttflist]


def configure_cjk_matplotlib(preferred: Sequence[str] = CJK_FONT_PREFERENCE) -> str:
    """Make matplotlib draw Chinese text with an installed CJK font and return the family chosen.

    The family goes first in ``font.sans-serif`` (the default family), so titles, tick labels and legends
    written in Chinese render; ``axes.unicode_minus`` is switched off because CJK fonts often lack U+2212.
    Fonts installed after matplotlib built its font cache are found by scanning the system font
    directories once.

    Raises
    ------
    LookupError
        If no CJK font is installed (``apt-get install fonts-noto-cjk`` on Debian).
    """
    import matplotlib as mpl
    from matplotlib import font_manager

    def pick() -> str | None:
        names = {name for name, _ in _installed_fonts()}
        for family in preferred:
            if family in names:
                return family
        return next((n for n in sorted(names) if "CJK" in n or "Han Sans" in n), None)

    family = pick()
    if family is None:
        for path in font_manager.findSystemFonts():
            if any(hint in Path(path).name.lower() for hint in _FONT_FILE_HINTS):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):  # an unreadable font file: try the next one
                    continue
        family = pick()
    if family is None:
        raise LookupError("no CJK font is installed, so Chinese labels would render as boxes: "
                          "install one (Debian: apt-get install fonts-noto-cjk)")
    sans = [f for f in mpl.rcParams["font.sans-serif"] if f != family]
    mpl.rcParams["font.family"] = "sans-serif"
    mpl.rcParams["font.sans-serif"] = [family, *sans]
    mpl.rcParams["axes.unicode_minus"] = False
    return family
