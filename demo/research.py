"""Helpers for the research notebooks: open a store to explore, copy it for what-if runs, render Chinese plots.

:func:`open_research_store` chooses the notebooks' data in one place, so each notebook opens it with one call
and holds no copy of the set-up. ``JIANGLIAN_NOTEBOOK_DATA`` says which:

- ``store`` (the default): **the configured store, read-only** — the one the site serves, chosen by the usual
  settings (:mod:`graph.config`): Neo4j when ``NEO4J_URI`` is set or ``JIANGLIAN_STORE=neo4j``, else the
  embedded store in ``JIANGLIAN_DATA_DIR``. Both admit other processes while the site runs. The store is
  wrapped in :class:`graph.readonly.ReadOnlyStore`, so a write raises
  :class:`~graph.errors.StoreReadOnly` instead of changing the coordinators' data; a store that does not exist
  yet or holds no worker is an error that says what to do.
- ``demo``: the deterministic Yancheng demo dataset (:func:`demo.generator.generate`, cached on disk per
  scale, seed and generator version) loaded into a private in-memory
  :class:`~graph.memory.MemoryStore` that nothing else shares, so a notebook may write to it freely.

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
from typing import Any, Literal

from graph.config import StoreSettings
from graph.dataset import export_dataset, load_dataset
from graph.errors import StoreUnavailable
from graph.memory import MemoryStore
from graph.readonly import ReadOnlyStore
from graph.store import GraphStore

__all__ = [
    "CACHE_ENV",
    "CJK_FONT_PREFERENCE",
    "DATA_ENV",
    "configure_cjk_matplotlib",
    "demo_dataset_dir",
    "neo4j_requested",
    "notebook_data",
    "open_research_store",
    "research_cypher",
    "scratch_copy",
]

#: Setting naming the directory where generated demo datasets are cached (default: the system temp dir).
CACHE_ENV = "JIANGLIAN_RESEARCH_CACHE"
#: Setting choosing the notebooks' data: ``store`` (the configured store, read-only; default) or ``demo``.
DATA_ENV = "JIANGLIAN_NOTEBOOK_DATA"

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
    for name in ("generator.py", "vocab.py"):
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


def notebook_data(env: Mapping[str, str] | None = None) -> Literal["store", "demo"]:
    """The notebooks' data as ``JIANGLIAN_NOTEBOOK_DATA`` asks: ``"store"`` (default) or ``"demo"``.

    Examples
    --------
    >>> notebook_data({}), notebook_data({"JIANGLIAN_NOTEBOOK_DATA": "Demo"})
    ('store', 'demo')
    """
    env = os.environ if env is None else env
    value = (env.get(DATA_ENV) or "store").strip().lower()
    if value not in ("store", "demo"):
        raise ValueError(f"{DATA_ENV} must be 'store' (the configured store, read-only) or 'demo', not {value!r}")
    return "demo" if value == "demo" else "store"


def neo4j_requested(env: Mapping[str, str] | None = None) -> bool:
    """Whether the notebooks read Neo4j: the configured store is asked for (not the demo) and it is Neo4j
    (``NEO4J_URI`` set, or ``JIANGLIAN_STORE=neo4j``).

    Examples
    --------
    >>> neo4j_requested({"NEO4J_URI": "bolt://127.0.0.1:7687"}), neo4j_requested({})
    (True, False)
    >>> neo4j_requested({"NEO4J_URI": "bolt://127.0.0.1:7687", "JIANGLIAN_NOTEBOOK_DATA": "demo"})
    False
    """
    env = os.environ if env is None else env
    if notebook_data(env) == "demo":
        return False
    return bool((env.get("NEO4J_URI") or "").strip()) or (env.get("JIANGLIAN_STORE") or "").strip().lower() == "neo4j"


def open_research_store(*, scale: float = 1.0, seed: int = 7, env: Mapping[str, str] | None = None,
                        writable: bool = False) -> GraphStore:
    """The store a notebook explores: the configured store read-only, or the private demo store when asked.

    Parameters
    ----------
    scale, seed
        Which demo dataset to load (``JIANGLIAN_NOTEBOOK_DATA=demo``).
    env
        The settings to read (default: the process environment): ``JIANGLIAN_NOTEBOOK_DATA``,
        ``JIANGLIAN_STORE``, ``JIANGLIAN_DATA_DIR``, ``NEO4J_URI``, ``NEO4J_USER``, ``NEO4J_PASSWORD``,
        ``NEO4J_DATABASE`` as in the README.
    writable
        Open the configured store without the read-only wrapper (for a deliberate change, not for exploring).

    Returns
    -------
    GraphStore
        A :class:`~graph.readonly.ReadOnlyStore` over the configured store (its ``kind`` is that store's), or a
        :class:`~graph.memory.MemoryStore` without a data directory holding the demo. Close it when done (it is a
        context manager).

    Raises
    ------
    graph.errors.StoreUnavailable
        If the configured store does not answer, does not exist yet, or holds no worker (the message says how
        to load data or to ask for the demo).
    """
    env = os.environ if env is None else env
    if notebook_data(env) == "demo":
        memory = MemoryStore(None)
        load_dataset(memory, demo_dataset_dir(scale=scale, seed=seed, env=env))
        return memory
    settings = StoreSettings.from_env(env)
    if neo4j_requested(env):
        settings = replace(settings, store="neo4j")
    store = _open_configured(settings)
    try:
        if store.count_nodes("Worker") == 0:
            raise StoreUnavailable(f"{_describe(settings)} holds no worker: load data into it (`jianglian demo` or "
                                   f"`jianglian load DIR`), or set {DATA_ENV}=demo for the private demo store")
    except BaseException:
        store.close()
        raise
    return store if writable else ReadOnlyStore(store)


def _describe(settings: StoreSettings) -> str:
    if settings.store == "neo4j":
        return f"the Neo4j database {settings.neo4j_database!r} at {settings.neo4j_uri}"
    return f"the embedded store in {settings.data_dir / 'store'}"


def _open_configured(settings: StoreSettings) -> GraphStore:
    """Open the configured store without creating anything: no schema statements, no new data directory."""
    if settings.store == "neo4j":
        from graph.neo4j_store import Neo4jStore

        neo4j = Neo4jStore.connect(settings.neo4j_uri, user=settings.neo4j_user, password=settings.neo4j_password,
                                   database=settings.neo4j_database)
        try:
            neo4j.ping()
        except BaseException:
            neo4j.close()
            raise
        return neo4j
    directory = settings.data_dir / "store"
    if not directory.is_dir() or not any(directory.iterdir()):
        raise StoreUnavailable(f"{_describe(settings)} does not exist yet: start the site once (`make serve`) or "
                               f"load data (`jianglian demo`), or set {DATA_ENV}=demo for the private demo store")
    return MemoryStore(directory)


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
