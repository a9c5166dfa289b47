"""Dataset interchange: validate, load and export directories of JSON Lines files.

A dataset is a directory of UTF-8 JSON Lines files (see the README): ``workers.jsonl``,
``problems.jsonl`` and optionally ``enterprises.jsonl``, ``skills.jsonl``, ``chains.jsonl`` and
``districts.jsonl``. Rows reference skills, districts and chains by *name*; those nodes use the
name as their id (the file's own code, if any, is kept as ``code``).

The rule that keeps round trips lossless: **a node's properties hold its row**, and the
relationships are derived from the row by :func:`row_relationships`. Values the graph cannot hold
(nested objects) are kept JSON-encoded in ``extra_json``.

Rows are checked against the row schema (:func:`graph.schema.check_row`) and problems are
:class:`graph.schema.Issue` codes; each :class:`~graph.errors.RowError` carries its code and the English
text. Rows held in memory (spreadsheet imports) go through the same checks (:func:`check_rows`,
:func:`load_rows`). Why this module is long (about 560 lines): reading, the row-to-node mapping,
loading and :func:`save_row` apply the same rules and are read together when a load goes wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graph.errors import DatasetError, RowError
from graph.schema import NAMED, SCHEMA, Issue, check_row, describe
from graph.store import GraphStore, NodeRow, RelRow, WriteBatch

__all__ = [
    "FILES",
    "STAGED_ABOVE",
    "Dataset",
    "LoadReport",
    "check_rows",
    "export_dataset",
    "load_dataset",
    "load_rows",
    "read_dataset",
    "row_relationships",
    "row_to_props",
    "save_row",
]

#: file name -> label, in load order (references point to earlier files).
FILES: dict[str, str] = {
    "districts.jsonl": "District",
    "chains.jsonl": "IndustryChain",
    "skills.jsonl": "Skill",
    "enterprises.jsonl": "Enterprise",
    "workers.jsonl": "Worker",
    "problems.jsonl": "Problem",
}
_REQUIRED_FILES = ("workers.jsonl", "problems.jsonl")
_NAMED = NAMED  # node id is the name rows refer to


def _error(file: str, line: int, issue: Issue) -> RowError:
    """A :class:`RowError` carrying ``issue`` and its English text."""
    return RowError(file, line, describe(issue), issue)


@dataclass
class Dataset:
    """Parsed, validated rows per label (file order kept)."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(r) for r in self.rows.values())


@dataclass
class LoadReport:
    """What :func:`load_dataset` did."""

    rows: dict[str, int]
    skipped: list[RowError]
    relationships: int


def _read_lines(path: Path) -> Iterator[tuple[int, str | None, Issue | None]]:
    """Yield ``(line number, text, decode problem)`` for each non-blank line."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield number, None, Issue("not-utf8", params={"byte": err.start})
                continue
            if number == 1:
                text = text.removeprefix("\ufeff")
            if text.strip():
                yield number, text, None


def read_dataset(
    directory: str | Path,
    *,
    known: Mapping[str, set[str]] | None = None,
) -> Dataset:
    """Parse and validate a dataset directory, collecting every bad row.

    Parameters
    ----------
    directory
        The dataset directory.
    known
        Ids already in the target store per label, so references to them are not dangling.

    Raises
    ------
    DatasetError
        If the directory or a required file is missing (bad rows are returned in ``errors``).
    """
    base = Path(directory)
    if not base.is_dir():
        raise DatasetError([_error(str(base), 0, Issue("not-a-directory"))])
    missing = [f for f in _REQUIRED_FILES if not (base / f).is_file()]
    if missing:
        raise DatasetError([_error(str(base / f), 0, Issue("missing-file")) for f in missing])
    return _validate({label: _parsed(base / name) for name, label in FILES.items() if (base / name).is_file()},
                     known)


def _parsed(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, row)`` for each non-blank line of a JSON Lines file; the row is an :class:`Issue` when
    the line cannot be read."""
    for number, text, decode_error in _read_lines(path):
        if decode_error is not None or text is None:
            yield number, decode_error or Issue("not-utf8", params={"byte": 0})
            continue
        try:
            yield number, json.loads(text)
        except ValueError as err:
            yield number, Issue("bad-json", params={"error": str(err)})


def check_rows(label: str, rows: Iterable[Mapping[str, Any]], *, known: Mapping[str, set[str]] | None = None
               ) -> Dataset:
    """Validate rows of one label held in memory exactly as :func:`read_dataset` validates its file (row ``i``
    is line ``i``); the rows returned are copies.

    Examples
    --------
    >>> data = check_rows("Worker", [{"id": "W1", "name": "王"}, {"id": "W1"}, {"id": "W2", "capacity": -1}])
    >>> [r["id"] for r in data.rows["Worker"]], [(e.line, e.issue.code) for e in data.errors]
    (['W1'], [(2, 'duplicate-id'), (3, 'type')])
    """
    return _validate({label: ((i, dict(row) if isinstance(row, Mapping) else row) for i, row in enumerate(rows, 1))},
                     known)


def _validate(sources: Mapping[str, Iterable[tuple[int, Any]]], known: Mapping[str, set[str]] | None) -> Dataset:
    """Check parsed rows per label (``(line, row or Issue)``), then the references between them and ``known``."""
    data = Dataset()
    ids: dict[str, set[str]] = {label: set((known or {}).get(label, set())) for label in FILES.values()}
    where: dict[tuple[str, str], tuple[str, int]] = {}
    for name, label in FILES.items():
        rows: list[dict[str, Any]] = []
        data.rows[label] = rows
        seen: set[str] = set()
        for number, row in sources.get(label, ()):
            problem = row if isinstance(row, Issue) else check_row(label, row)
            if problem is None and row["id"] in seen:
                problem = Issue("duplicate-id", "id", {"id": row["id"], "first_line": where[(label, row["id"])][1]})
            if problem is not None:
                data.errors.append(_error(name, number, problem))
                continue
            seen.add(row["id"])
            where[(label, row["id"])] = (name, number)
            row["__line"] = number
            rows.append(row)
        ids[label] |= seen
    # dangling references, now that every file is read; a row dropped for one can leave another dangling
    # (a worker whose mentee was dropped, a problem solved by a dropped worker), so repeat until stable
    references = [(label, spec) for label, specs in SCHEMA.items() for spec in specs if spec.references]
    bad: set[tuple[str, str]] = set()
    while True:
        found: list[tuple[str, dict[str, Any], Issue]] = []
        for label, spec in references:
            for row in data.rows.get(label, ()):
                if (label, row["id"]) not in bad:
                    issue = _unknown_reference(spec.name, spec.type == "list[str]", spec.references, row,
                                               lambda target, ref: ref in ids[target])
                    if issue is not None:
                        found.append((label, row, issue))
        if not found:
            break
        for label, row, issue in found:
            if (label, row["id"]) not in bad:
                data.errors.append(_error(_file_of(label), row["__line"], issue))
                bad.add((label, row["id"]))
                if row["id"] not in (known or {}).get(label, set()):  # still in the store otherwise
                    ids[label].discard(row["id"])
    if bad:
        for label in data.rows:
            data.rows[label] = [r for r in data.rows[label] if (label, r["id"]) not in bad]
    data.errors.sort(key=lambda e: (list(FILES).index(e.file) if e.file in FILES else 99, e.line))
    return data


def _unknown_reference(key: str, many: bool, target: str, row: Mapping[str, Any],
                       exists: Callable[[str, str], bool]) -> Issue | None:
    """The ``unknown-reference`` problem of ``row[key]`` (an id, or a list of ids when ``many``), or None."""
    value = row.get(key)
    if value is None:
        return None
    unknown = [ref for ref in (value if many else [value]) if not exists(target, ref)]
    if not unknown:
        return None
    return Issue("unknown-reference", key, {"target": target, "ids": unknown[:5], "many": many})


def _file_of(label: str) -> str:
    return next(f for f, lab in FILES.items() if lab == label)


def row_to_props(label: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """Node properties for a dataset row: storable values as they are, the rest in ``extra_json``.

    Examples
    --------
    >>> row_to_props("Problem", {"id": "p1", "title": "主轴异响", "outcomes": [{"rating": 5}]})
    {'title': '主轴异响', 'extra_json': '{"outcomes": [{"rating": 5}]}'}
    """
    props: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in row.items():
        if key in ("id", "__line"):
            continue
        if label in _NAMED and key == "id":
            continue
        storable = value is None or isinstance(value, str | int | float | bool) or (
            isinstance(value, list)
            and len({type(v) for v in value}) <= 1
            and all(isinstance(v, str | int | float | bool) for v in value)
        )
        if storable and key != "extra_json":
            props[key] = value
        else:
            extra[key] = value
    if label in _NAMED and "id" in row and row["id"] != row.get("name"):
        props["code"] = row["id"]
    if extra:
        props["extra_json"] = json.dumps(extra, ensure_ascii=False, sort_keys=True)
    return {k: v for k, v in props.items() if v is not None}


def _node_id(label: str, row: Mapping[str, Any]) -> str:
    return str(row.get("name") or row["id"]) if label in _NAMED else str(row["id"])


def props_to_row(label: str, node: Mapping[str, Any]) -> dict[str, Any]:
    """Invert :func:`row_to_props` for export."""
    row: dict[str, Any] = {"id": node.get("code", node["id"]) if label in _NAMED else node["id"]}
    for key, value in node.items():
        if key in ("id", "code", "extra_json") or key.startswith("_"):
            continue
        row[key] = value
    if label in _NAMED and "name" not in row:
        row["name"] = node["id"]
    if node.get("extra_json"):
        row.update(json.loads(node["extra_json"]))
    return row


def row_relationships(
    label: str,
    node_id: str,
    row: Mapping[str, Any],
    *,
    skill_of: Callable[[str], str] = lambda s: s,
    code_to_name: Mapping[tuple[str, str], str] | None = None,
) -> list[RelRow]:
    """The relationships a row implies (the only place that mapping is written down).

    Parameters
    ----------
    skill_of
        Maps a skill name or alias to the canonical skill node id.
    code_to_name
        ``(label, code) -> name`` for districts and chains referenced by code in the optional files.
    """
    codes = code_to_name or {}
    rels: list[RelRow] = []

    def add(rel: str, end_label: str, end_id: str, start: tuple[str, str] | None = None,
            **props: Any) -> None:
        s_label, s_id = start or (label, node_id)
        rels.append(RelRow(rel, s_label, s_id, end_label, end_id, props))

    if label == "Worker":
        for skill in dict.fromkeys(skill_of(s) for s in row.get("skills") or []):
            add("HAS_SKILL", "Skill", skill)
        if row.get("district"):
            add("LOCATED_IN", "District", row["district"])
        if row.get("employer_id"):
            add("EMPLOYED_BY", "Enterprise", row["employer_id"])
        for mentee in row.get("mentors") or []:
            if isinstance(mentee, str):
                add("MENTORS", "Worker", mentee)
    elif label == "Enterprise":
        if row.get("district"):
            add("LOCATED_IN", "District", row["district"])
        if row.get("industry_chain"):
            add("IN_CHAIN", "IndustryChain", row["industry_chain"])
    elif label == "Problem":
        for skill in dict.fromkeys(skill_of(s) for s in row.get("skills") or []):
            add("REQUIRES", "Skill", skill)
        if row.get("enterprise_id"):
            add("POSTED", "Problem", node_id, start=("Enterprise", row["enterprise_id"]))
        if row.get("district"):
            add("LOCATED_IN", "District", row["district"])
        outcomes = {o.get("worker_id"): o for o in row.get("outcomes") or [] if isinstance(o, dict)}
        for worker in dict.fromkeys(row.get("solved_by") or []):
            outcome = outcomes.get(worker, {})
            props = {k: outcome[k] for k in ("rating", "hours", "trainees") if isinstance(
                outcome.get(k), int | float) and not isinstance(outcome.get(k), bool)}
            if row.get("solved_at"):
                props["at"] = row["solved_at"]
            add("SOLVED", "Problem", node_id, start=("Worker", worker), **props)
    elif label == "Skill":
        for chain in row.get("chain_ids") or []:
            add("IN_CHAIN", "IndustryChain", codes.get(("IndustryChain", chain), chain))
    elif label == "District":
        for other in row.get("neighbours") or []:
            add("ADJACENT_TO", "District", codes.get(("District", other), other))
    return rels


def _implicit_nodes(rels: Iterable[RelRow]) -> list[NodeRow]:
    """Skill, district and chain nodes that rows reference without defining."""
    seen: dict[tuple[str, str], NodeRow] = {}
    for rel in rels:
        for lab, nid in ((rel.start_label, rel.start_id), (rel.end_label, rel.end_id)):
            if lab in _NAMED and (lab, nid) not in seen:
                seen[(lab, nid)] = NodeRow(lab, nid, {"name": nid})
    return list(seen.values())


#: Above this many rows (nodes, relationships, deletions) a load into Neo4j is staged in chunks
#: (:mod:`graph.neo4j_load`) instead of one transaction, whose heap grows with the dataset.
STAGED_ABOVE = 20_000


def load_dataset(
    store: GraphStore,
    directory: str | Path | Callable[[Mapping[str, set[str]]], Dataset],
    *,
    skip_invalid: bool = False,
    progress: Callable[[int], object] | None = None,
    log: Callable[[str], object] | None = None,
    staged_above: int = STAGED_ABOVE,
    fail_after: int | None = None,
) -> LoadReport:
    """Validate then import a dataset, all or nothing; idempotent.

    The write is one atomic batch, except into Neo4j above ``staged_above`` rows, where it is staged in chunks
    by :func:`graph.neo4j_load.staged_apply` (all or nothing too; a load killed halfway is finished or undone
    by the next load). Into Neo4j, a previous load that did not finish is recovered first.

    Parameters
    ----------
    directory
        The dataset directory, or a function of the stored enterprise and worker ids that validates rows held
        in memory (see :func:`load_rows`).
    log
        Told about the recovery, commit or undo of a staged load.
    fail_after
        Tests only: a staged load fails after this many rows.

    Raises
    ------
    DatasetError
        If any row is invalid and ``skip_invalid`` is false; nothing is written then.
    graph.neo4j_load.LoadInProgress
        If another process is loading into the same Neo4j database.
    """
    say: Callable[[str], object] = log or (lambda message: None)
    staged = None
    if store.kind == "neo4j":
        from graph.neo4j_load import recover, staged_apply
        from graph.neo4j_store import Neo4jStore

        if isinstance(store, Neo4jStore):
            recover(store, log=say)
            staged = store
    known = {label: {n["id"] for n in store.iter_nodes(label)} for label in ("Enterprise", "Worker")}
    data = read_dataset(directory, known=known) if isinstance(directory, str | Path) else directory(known)
    if data.errors and not skip_invalid:
        raise DatasetError(data.errors)
    codes: dict[tuple[str, str], str] = {}
    for label in _NAMED:
        for row in data.rows.get(label, []):
            codes[(label, row["id"])] = _node_id(label, row)
    # one paged read per label instead of a lookup per referenced skill (2,000+ round trips on Neo4j)
    stored_named = {label: list(store.iter_nodes(label)) for label in sorted(_NAMED)}
    present = {(label, node["id"]) for label, nodes in stored_named.items() for node in nodes}
    aliases: dict[str, str] = {}
    for node in stored_named["Skill"]:
        for alias in node.get("aliases") or []:
            aliases.setdefault(alias, node["id"])
    for row in data.rows.get("Skill", []):
        for alias in row.get("aliases") or []:
            aliases[alias] = _node_id("Skill", row)

    def skill_of(name: str) -> str:
        return aliases.get(name, name)

    batch = WriteBatch()
    explicit: set[tuple[str, str]] = set()
    derived: list[RelRow] = []
    for label in FILES.values():
        for row in data.rows.get(label, []):
            node_id = _node_id(label, row)
            explicit.add((label, node_id))
            batch.nodes.append(NodeRow(label, node_id, row_to_props(label, row)))
            derived.extend(row_relationships(label, node_id, row, skill_of=skill_of, code_to_name=codes))
    defined = explicit | present
    implicit = [n for n in _implicit_nodes(derived) if (n.label, n.id) not in defined]
    batch.nodes[:0] = implicit
    batch.rels = list({r.key: r for r in derived}.values())
    batch.delete_rels = _stale_relationships(store, explicit, batch.rels)
    counts = {label: len(rows) for label, rows in data.rows.items() if rows}
    skipped = data.errors
    # the parsed rows are not needed any more: free them before the store builds its own copies, which
    # then reuse their memory (at a million problems they are gigabytes)
    del data, derived, implicit
    if staged is not None and len(batch) > staged_above:
        staged_apply(staged, batch, progress=progress, log=say, fail_after=fail_after)
    else:
        store.apply(batch, progress=progress)
    return LoadReport(rows=counts, skipped=skipped, relationships=len(batch.rels))


def load_rows(store: GraphStore, label: str, rows: Sequence[Mapping[str, Any]]) -> LoadReport:
    """Validate then import rows of one label held in memory, all or nothing, as :func:`load_dataset` imports
    a file of them (no files are written).

    Raises
    ------
    DatasetError
        If any row is invalid; nothing is written then.
    """
    return load_dataset(store, lambda known: check_rows(label, rows, known=known))


_DERIVED_FROM = {  # relationship type -> label whose row it derives from (start or end)
    "HAS_SKILL": ("Worker", "start"), "EMPLOYED_BY": ("Worker", "start"), "MENTORS": ("Worker", "start"),
    "REQUIRES": ("Problem", "start"), "POSTED": ("Problem", "end"), "SOLVED": ("Problem", "end"),
    "IN_CHAIN": (None, "start"), "LOCATED_IN": (None, "start"), "ADJACENT_TO": ("District", "start"),
}


def _stale_relationships(store: GraphStore, reloaded: set[tuple[str, str]], fresh: list[RelRow]) -> list[RelRow]:
    """Relationships of re-loaded rows that the new rows no longer imply."""
    if not any(store.count_nodes(label) for label in ("Worker", "Problem")):
        return []
    keep = {r.key for r in fresh}
    stale: list[RelRow] = []
    for rel_type, (_, side) in _DERIVED_FROM.items():
        for rel in store.relationships(rel_type):
            owner = (rel.start_label, rel.start_id) if side == "start" else (rel.end_label, rel.end_id)
            if owner in reloaded and rel.key not in keep:
                stale.append(rel)
    return stale


def export_dataset(store: GraphStore, directory: str | Path) -> dict[str, int]:
    """Write every domain node back as dataset rows; returns the row count per file."""
    base = Path(directory)
    base.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for name, label in FILES.items():
        n = 0
        tmp = base / (name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for node in store.iter_nodes(label):
                fh.write(json.dumps(props_to_row(label, node), ensure_ascii=False) + "\n")
                n += 1
        tmp.replace(base / name)
        counts[name] = n
    return counts


def save_row(store: GraphStore, label: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """Create or replace one node from a dataset row, keeping its derived relationships consistent.

    The row is validated like :func:`load_dataset` validates a file row (types, references to
    enterprises, ``solved_by`` workers); the node's properties become exactly the row's (properties
    the row no longer has are cleared, ``_``-prefixed internal ones are kept); the relationships the
    row implies replace those a previous version of the row implied; missing skill, district and
    chain nodes are created. Everything is one atomic :class:`~graph.store.WriteBatch`.

    Returns the stored node.

    Raises
    ------
    DatasetError
        If the row is invalid (one :class:`RowError` per problem, ``line`` 0).

    Examples
    --------
    >>> from graph.memory import MemoryStore
    >>> store = MemoryStore()
    >>> save_row(store, "Worker", {"id": "w1", "name": "王师傅", "skills": ["焊接"]})["skills"]
    ['焊接']
    >>> [r.end_id for r in store.relationships("HAS_SKILL", start=("Worker", "w1"))]
    ['焊接']
    >>> _ = save_row(store, "Worker", {"id": "w1", "name": "王师傅", "skills": ["PLC"]})
    >>> [r.end_id for r in store.relationships("HAS_SKILL", start=("Worker", "w1"))]
    ['PLC']
    """
    if label not in SCHEMA:
        raise DatasetError([_error(label, 0, Issue("unknown-label", params={"label": label}))])
    existing_id = row.get("id") if isinstance(row, Mapping) else None
    new = not (isinstance(existing_id, str) and label not in _NAMED and store.get_node(label, existing_id))
    problem = check_row(label, dict(row) if isinstance(row, Mapping) else row, new=new)
    if problem is not None:
        raise DatasetError([_error(label, 0, problem)])
    errors: list[RowError] = []
    for spec in SCHEMA[label]:
        # enterprises must exist; a mentee that does not is left out (see below)
        if spec.references and spec.name != "mentors":
            issue = _unknown_reference(spec.name, spec.type == "list[str]", spec.references, row,
                                       lambda target, ref: store.get_node(target, ref) is not None)
            if issue is not None:
                errors.append(_error(label, 0, issue))
    if errors:
        raise DatasetError(errors)

    node_id = _node_id(label, row)
    aliases: dict[str, str] = {}
    for node in store.iter_nodes("Skill"):
        for alias in node.get("aliases") or []:
            aliases.setdefault(alias, node["id"])
    rels = row_relationships(label, node_id, row, skill_of=lambda s: aliases.get(s, s))
    rels = [r for r in rels if not (r.type == "MENTORS" and store.get_node("Worker", r.end_id) is None)]
    props = row_to_props(label, row)
    existing = store.get_node(label, node_id) or {}
    for key in existing:
        if key != "id" and not key.startswith("_") and key not in props:
            props[key] = None  # the row dropped it
    batch = WriteBatch()
    batch.nodes.extend(n for n in _implicit_nodes(rels)
                       if (n.label, n.id) != (label, node_id) and store.get_node(n.label, n.id) is None)
    batch.nodes.append(NodeRow(label, node_id, props))
    batch.rels = list({r.key: r for r in rels}.values())
    keep = {r.key for r in batch.rels}
    for rel_type, (owner_label, side) in _DERIVED_FROM.items():
        if owner_label not in (None, label):
            continue
        where = {"start": (label, node_id)} if side == "start" else {"end": (label, node_id)}
        for rel in store.relationships(rel_type, **where):  # type: ignore[arg-type]
            if rel.key not in keep:
                batch.delete_rels.append(rel)
    store.apply(batch)
    saved = store.get_node(label, node_id)
    assert saved is not None
    return saved
