"""Compiled loops (numba) for the sparse reads of a recommendation: rows times queries, rows on some columns.

Why this module is long (about 530 lines): every compiled loop of a query is here, each beside the rules they
all keep to be the numpy/scipy code's numbers bit for bit and cached by numba (a float32 accumulator started
as ``float32(0.0)``, numpy's pairwise order for a float64 sum, no recursion and no function arguments), and
the per-thread scratch they share; ``tests/test_kernels.py`` holds each to the code it replaced.

A recommendation at a million history problems reads about a million stored entries of the problems' TF-IDF
rows (the candidates' solved problems on the query's terms, their nearest ones' character rows). Done with
scipy, each read is a chain of whole-array passes: gather the rows (a copy), convert half floats, restrict
to the query's columns (another copy), multiply. These loops make one pass over the stored entries and write
only what is kept.

Every sum is the one scipy makes, bit for bit: the same float32 products added in the same (stored) order
into a float32 accumulator, the terms a query lacks adding exact zeros. The tests compare both ways.

Scratch arrays over the columns (a query's weights, or its columns' local numbers) are kept per thread and
restored after each call, so a call touches only the pages of the query's own columns.

A large read is split in parts of about equal stored entries, read at once by a few threads
(:mod:`recommender.threads`; the loops release the GIL): the entries of a query's reads lie scattered, so each
loop waits on its loads, not on arithmetic, and two cores read nearly twice as fast. Each output number is still
computed by one loop in one order, so the numbers do not depend on the split.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import scipy.sparse as sp
from numba import float32, njit, types
from numba.extending import overload

from recommender.threads import in_parts

__all__ = ["best_per_segment", "bm25_scores", "compiled_source", "entry_dots", "push_at", "rows_on_columns"]

_scratch = threading.local()


def _scratch_array(kind: str, size: int, dtype: Any, fill: float) -> np.ndarray:
    """This thread's scratch array of at least ``size`` entries all equal to ``fill`` (kept between calls: the
    kernels put back every entry they change)."""
    key = f"{kind}_{np.dtype(dtype).str}"
    have = getattr(_scratch, key, None)
    if have is None or len(have) < size:  # (zeros: pages the kernels never touch are never made)
        have = np.zeros(size, dtype=dtype) if fill == 0 else np.full(size, fill, dtype=dtype)
        setattr(_scratch, key, have)
    return have


def _value(values: Any, table: Any, k: Any) -> Any:
    """Stored value ``k``: ``values[k]``, or with a ``table`` (half floats) ``table[values[k]]``."""
    return values[k] if table is None else table[values[k]]


@overload(_value)
def _value_compiled(values: Any, table: Any, k: Any) -> Any:  # pragma: no cover - compiled
    # chosen by the table's type when a loop is compiled, so each loop has a plain and a half-float version
    # and is cached (a compiled function passed as an argument would make every process compile it again)
    def plain(values: Any, table: Any, k: Any) -> Any:
        return values[k]

    def tabled(values: Any, table: Any, k: Any) -> Any:
        return table[np.intp(values[k])]

    return plain if isinstance(table, types.NoneType) else tabled


@njit(cache=True)
def _touch(indptr: Any, indices: Any, values: Any, r: Any) -> Any:  # pragma: no cover - compiled
    """Read one number per cache line of stored row ``r`` (a prefetch: the rows a query reads lie scattered
    and are not in the CPU's caches; the sums are bound by their loads, not their arithmetic)."""
    sink = 0
    for k in range(indptr[r], indptr[r + 1], 16):
        sink += indices[k]
    for k in range(indptr[r], indptr[r + 1], 32):
        sink += values[k] > 0
    return sink


@njit(cache=True, nogil=True)
def _entry_dots(indptr: Any, indices: Any, values: Any, table: Any, rows: Any, owner: Any,
                q_indptr: Any, q_indices: Any, q_data: Any, weights: Any, bits: Any) -> Any:  # pragma: no cover
    out = np.zeros(len(rows), dtype=np.float64)
    e = 0
    sink = 0
    one = np.uint64(1)
    for q in range(len(q_indptr) - 1):
        for k in range(q_indptr[q], q_indptr[q + 1]):
            c = q_indices[k]
            weights[c] = q_data[k]
            bits[c >> 6] |= one << np.uint64(c & 63)
        while e < len(rows) and owner[e] == q:
            if e + 1 < len(rows):  # touch the next row's cache lines: its loads overlap this row's sums
                sink += _touch(indptr, indices, values, rows[e + 1])
            r = rows[e]
            acc = float32(0.0)  # float32 products added in stored order into a float32, as scipy's
            for k in range(indptr[r], indptr[r + 1]):
                c = indices[k]
                # a term outside the query adds an exact zero: skipped, after a look at a bit set small enough
                # for the first-level cache (the weights over every term are not)
                if (bits[c >> 6] >> np.uint64(c & 63)) & one:
                    acc += _value(values, table, k) * weights[c]
            out[e] = acc
            e += 1
        for k in range(q_indptr[q], q_indptr[q + 1]):
            c = q_indices[k]
            weights[c] = float32(0.0)
            bits[c >> 6] = np.uint64(0)
    if len(out):
        out[0] += 0.0 * sink  # (keeps the touching loads; adds an exact zero)
    return out


@njit(cache=True, nogil=True)
def _rows_on_columns(indptr: Any, indices: Any, values: Any, table: Any, rows: Any, columns: Any,
                     local: Any) -> Any:  # pragma: no cover - compiled
    for i in range(len(columns)):
        local[columns[i]] = i
    total = 0
    for r in rows:
        total += indptr[r + 1] - indptr[r]
    out_ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    out_indices = np.empty(total + 1, dtype=np.int32)
    kept = np.empty(total + 1, dtype=np.int64)
    n = 0
    for i in range(len(rows)):
        r = rows[i]
        for k in range(indptr[r], indptr[r + 1]):  # without a branch: a kept entry is one in six or fewer
            c = local[indices[k]]
            out_indices[n] = c
            kept[n] = k
            n += c >= 0
        out_ptr[i + 1] = n
    out_values = np.empty(n, dtype=np.float32)
    for j in range(n):
        out_values[j] = _value(values, table, kept[j])
    for i in range(len(columns)):
        local[columns[i]] = -1
    return out_ptr, out_indices[:n].copy(), out_values


def compiled_source(m: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, int] | None:
    """``m``'s stored arrays as these loops read them, ``(indptr, indices, values, table, n_cols)``: a float32
    CSR matrix's own, or what a compact form's ``arrays()`` gives (``HalfRows``: its half floats' bits and
    their table); ``None`` for anything else."""
    if hasattr(m, "arrays"):
        return m.arrays()  # type: ignore[no-any-return]
    if isinstance(m, sp.csr_matrix) and m.dtype == np.float32:
        return m.indptr, m.indices, m.data, None, int(m.shape[1])
    return None


def _checked_rows(rows: np.ndarray, n_rows: int) -> np.ndarray:
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= n_rows):
        raise IndexError(f"row out of range for {n_rows} rows")
    return rows


def entry_dots(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, lut: np.ndarray | None,
               n_cols: int, rows: np.ndarray, owner: np.ndarray, q_indptr: np.ndarray, q_indices: np.ndarray,
               q_data: np.ndarray) -> np.ndarray:
    """Per entry ``e``, the dot product of stored row ``rows[e]`` with query ``owner[e]``, summed in float32.

    The stored rows are CSR arrays (``values`` float32, or half floats' bits as ``uint16`` read through ``lut``,
    every half float's float32 value); the queries a CSR matrix over the same ``n_cols`` columns with no
    repeated column in a row. ``owner`` is non-decreasing.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> m = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]], dtype=np.float32))
    >>> q = sp.csr_matrix(np.array([[0.5, 1.0, 1.0], [1.0, 0.0, 0.0]], dtype=np.float32))
    >>> entry_dots(m.indptr, m.indices, m.data, None, 3, np.array([0, 1, 0]), np.array([0, 0, 1]),
    ...            q.indptr, q.indices, q.data).tolist()
    [2.5, 3.0, 1.0]
    """
    rows = _checked_rows(rows, len(indptr) - 1)
    owner = np.ascontiguousarray(owner, dtype=np.int64)
    if len(owner) != len(rows) or (len(owner) > 1 and np.any(np.diff(owner) < 0)):
        raise ValueError("owner must give each row's query, non-decreasing")
    if len(owner) and (owner[0] < 0 or owner[-1] >= len(q_indptr) - 1):
        raise IndexError("owner names a query that is not there")
    q_indices = np.asarray(q_indices)
    if len(q_indices) and (q_indices.min() < 0 or q_indices.max() >= n_cols):
        raise IndexError(f"query column out of range for {n_cols} columns")
    # each (query, row) once, in row order within a query (entries repeat a row a tenth of the time)
    keys, back = np.unique(owner * (len(indptr) - 1) + rows, return_inverse=True)
    once_rows, once_owner = keys % (len(indptr) - 1), keys // (len(indptr) - 1)
    q_data = np.asarray(q_data, dtype=np.float32)

    def read(lo: int, hi: int) -> np.ndarray:
        weights = _scratch_array("weights", n_cols, np.float32, 0.0)
        bits = _scratch_array("bits", n_cols // 64 + 1, np.uint64, 0)
        return np.asarray(_entry_dots(indptr, indices, values, lut, once_rows[lo:hi], once_owner[lo:hi],
                                      q_indptr, q_indices, q_data, weights, bits))

    once = np.concatenate(in_parts(read, indptr[once_rows + 1] - indptr[once_rows]))
    return once[back.ravel()]


def rows_on_columns(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, lut: np.ndarray | None,
                    n_cols: int, rows: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stored rows ``rows`` (CSR arrays as for :func:`entry_dots`) on ``columns`` only (unique), as CSR arrays
    ``(indptr, indices, float32 values)`` with the columns numbered within ``columns``, in stored order.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> m = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]], dtype=np.float32))
    >>> ptr, ind, val = rows_on_columns(m.indptr, m.indices, m.data, None, 3, np.array([1, 0]), np.array([0, 1]))
    >>> ptr.tolist(), ind.tolist(), val.tolist()
    ([0, 1, 2], [1, 0], [3.0, 1.0])
    """
    rows = _checked_rows(rows, len(indptr) - 1)
    columns = np.ascontiguousarray(columns, dtype=np.int64)
    if len(columns) and (columns.min() < 0 or columns.max() >= n_cols):
        raise IndexError(f"column out of range for {n_cols} columns")

    def read(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        local = _scratch_array("local", n_cols, np.int32, -1)
        return _rows_on_columns(indptr, indices, values, lut, rows[lo:hi], columns, local)  # type: ignore[no-any-return]

    parts = in_parts(read, indptr[rows + 1] - indptr[rows])
    if len(parts) == 1:
        ptr, ind, val = parts[0]
        return np.asarray(ptr), np.asarray(ind), np.asarray(val)
    starts = np.cumsum([0] + [p[0][-1] for p in parts[:-1]])
    ptr = np.concatenate([parts[0][0][:1]] + [p[0][1:] + start for p, start in zip(parts, starts, strict=True)])
    return ptr, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])


@njit(cache=True)
def _block_sum(a: Any, lo: int, n: int) -> Any:  # pragma: no cover - compiled
    """numpy's sum of at most 128 numbers ``a[lo:lo + n]``: in order below 8, else eight-way unrolled."""
    if n < 8:
        res = -0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    whole = n - n % 8
    while i < whole:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True)
def _pairwise_sum(a: Any, lo: int, n: int) -> Any:  # pragma: no cover - compiled
    """numpy's sum of ``a[lo:lo + n]`` (float64), in numpy's order: halves (multiples of 8) summed recursively
    down to blocks of 128. The recursion runs on an explicit stack (numba caches no recursive function)."""
    if n <= 128:
        return _block_sum(a, lo, n)
    starts = np.empty(128, dtype=np.int64)
    sizes = np.empty(128, dtype=np.int64)
    phase = np.zeros(128, dtype=np.int64)
    partial = np.empty(128)
    top, kept = 1, 0
    starts[0], sizes[0] = lo, n
    while top:
        at, size = starts[top - 1], sizes[top - 1]
        if size <= 128:
            partial[kept] = _block_sum(a, at, size)
            kept += 1
            top -= 1
            continue
        half = size // 2
        half -= half % 8
        if phase[top - 1] == 0:  # the left half first
            phase[top - 1] = 1
            starts[top], sizes[top], phase[top] = at, half, 0
            top += 1
        elif phase[top - 1] == 1:  # then the right half
            phase[top - 1] = 2
            starts[top], sizes[top], phase[top] = at + half, size - half, 0
            top += 1
        else:  # left + right
            partial[kept - 2] = partial[kept - 2] + partial[kept - 1]
            kept -= 1
            top -= 1
    return partial[0]


@njit(cache=True)
def _above(nodes: Any, count: int, r: Any, indptr: Any, eps: float, frozen: Any, mark: Any) -> Any:
    # pragma: no cover - compiled
    """The first ``count`` of ``nodes`` whose residual exceeds ``eps`` x degree (not frozen), once each, sorted."""
    out = np.empty(count, dtype=np.int64)
    n = 0
    for i in range(count):
        v = nodes[i]
        if mark[v]:
            continue
        if r[v] > eps * max(indptr[v + 1] - indptr[v], 1) and not frozen[v]:
            mark[v] = True
            out[n] = v
            n += 1
    out = np.sort(out[:n])
    for i in range(n):
        mark[out[i]] = False
    return out


@njit(cache=True, nogil=True)
def _push_rounds(indptr: Any, indices: Any, data: Any, seeds: Any, seed_mass: Any, damping: float, eps: float,
                 frozen: Any, max_rounds: int, x: Any, r: Any, mark: Any) -> Any:  # pragma: no cover - compiled
    """The push rounds on ``x``, ``r`` (zero on entry): ``(converged, touched, n_touched)``, the first
    ``n_touched`` of ``touched`` every node whose score or residual was written (some more than once)."""
    touched = np.empty(len(seeds) + 16, dtype=np.int64)
    n_touched = 0
    for i in range(len(seeds)):
        r[seeds[i]] = seed_mass[i]
        touched[n_touched] = seeds[i]
        n_touched += 1
    frontier = _above(seeds, len(seeds), r, indptr, eps, frozen, mark)
    for _ in range(max_rounds):
        if len(frontier) == 0:
            return True, touched, n_touched
        pushed = np.empty(len(frontier))
        dangling = np.empty(len(frontier))
        n_dangling = 0
        size = len(seeds)
        for i in range(len(frontier)):
            v = frontier[i]
            pushed[i] = r[v]
            size += indptr[v + 1] - indptr[v]
        for i in range(len(frontier)):
            v = frontier[i]
            r[v] = 0.0
            x[v] += (1.0 - damping) * pushed[i]
            if indptr[v + 1] == indptr[v]:
                dangling[n_dangling] = pushed[i]
                n_dangling += 1
        targets = np.empty(size, dtype=np.int64)
        t = 0
        for i in range(len(frontier)):
            v = frontier[i]
            share = damping * pushed[i]
            for j in range(indptr[v], indptr[v + 1]):
                r[indices[j]] += data[j] * share
                targets[t] = indices[j]
                t += 1
        lost = damping * _pairwise_sum(dangling, 0, n_dangling)
        if lost > 0.0:
            for i in range(len(seeds)):
                r[seeds[i]] += lost * seed_mass[i]
                targets[t] = seeds[i]
                t += 1
        # (a pushed node was a seed or an earlier target: already recorded)
        if n_touched + t > len(touched):
            grown = np.empty(max(2 * len(touched), n_touched + t), dtype=np.int64)
            grown[:n_touched] = touched[:n_touched]
            touched = grown
        touched[n_touched:n_touched + t] = targets[:t]
        n_touched += t
        frontier = _above(targets, t, r, indptr, eps, frozen, mark)
    return False, touched, n_touched


@njit(cache=True, nogil=True)
def _push_at(indptr: Any, indices: Any, data: Any, seeds: Any, seed_mass: Any, damping: float, eps: float,
             frozen: Any, max_rounds: int, x: Any, r: Any, mark: Any, read_x: Any, read_r: Any) -> Any:
    # pragma: no cover - compiled
    done, touched, n_touched = _push_rounds(indptr, indices, data, seeds, seed_mass, damping, eps, frozen,
                                            max_rounds, x, r, mark)
    out_x = np.empty(len(read_x))
    for i in range(len(read_x)):
        out_x[i] = x[read_x[i]]
    out_r = np.empty(len(read_r))
    for i in range(len(read_r)):
        out_r[i] = r[read_r[i]]
    for i in range(n_touched):  # the scratch back to zeros, for the next call
        x[touched[i]] = 0.0
        r[touched[i]] = 0.0
    return out_x, out_r, done


def push_at(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, seeds: np.ndarray, seed_mass: np.ndarray,
            read_scores: np.ndarray, read_residual: np.ndarray, *, damping: float, eps: float,
            frozen: np.ndarray | None, max_rounds: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """The rounds of :func:`recommender.signals.push_pagerank` over a CSC transition's arrays, in one compiled
    loop: ``(scores at read_scores, residual at read_residual, converged)``, each number the vectorised rounds'
    to the bit (the same operations in the same order, the dangling mass summed in numpy's pairwise order).

    The rounds run on this thread's scratch vectors over every node (zero between calls: only the entries a
    push wrote are reset), so a call touches the pages of the seeds' neighbourhood and of what it reads only.
    ``seeds`` are sorted and unique with their normalised ``seed_mass``; ``frozen`` a boolean mask or ``None``.
    """
    n_nodes = len(indptr) - 1
    if frozen is None:
        frozen = np.zeros(n_nodes, dtype=np.bool_)
    read_scores = _checked_rows(read_scores, n_nodes)
    read_residual = _checked_rows(read_residual, n_nodes)
    x = _scratch_array("push_x", n_nodes, np.float64, 0.0)
    r = _scratch_array("push_r", n_nodes, np.float64, 0.0)
    mark = _scratch_array("push_mark", n_nodes, np.bool_, 0)
    out_x, out_r, done = _push_at(indptr, indices, data, np.ascontiguousarray(seeds, dtype=np.int64),
                                  np.ascontiguousarray(seed_mass, dtype=np.float64), float(damping), float(eps),
                                  np.ascontiguousarray(frozen, dtype=np.bool_), int(max_rounds), x, r, mark,
                                  read_scores, read_residual)
    return np.asarray(out_x), np.asarray(out_r), bool(done)


@njit(cache=True, nogil=True)
def _bm25(pair_ptr: Any, entry_doc: Any, entry_weight: Any, rows_ptr: Any, rows_terms: Any, doc_counts: Any,
          terms: Any, bm25_idf: Any, norm: Any, k1: float, pair_w: Any, pair_q: Any,
          q_dense: Any) -> Any:  # pragma: no cover - compiled
    n_pairs = len(pair_ptr) - 1
    out = np.zeros(n_pairs)
    n_terms = len(terms)
    counts = np.zeros(n_terms)
    term_bm25_idf = np.empty(n_terms)
    for t in range(n_terms):
        term_bm25_idf[t] = bm25_idf[terms[t]]
    for p in range(n_pairs):
        for e in range(pair_ptr[p], pair_ptr[p + 1]):
            d = entry_doc[e]
            for k in range(rows_ptr[d], rows_ptr[d + 1]):
                counts[rows_terms[k]] += entry_weight[e] * doc_counts[k]
        acc = float32(0.0)
        w, q = pair_w[p], pair_q[p]
        for t in range(n_terms):  # in term order, as the weights' sorted rows are summed
            tf = counts[t]
            if tf != 0.0:
                weight = float32(term_bm25_idf[t] * tf * (k1 + 1.0) / (tf + norm[w]))
                acc += weight * q_dense[t, q]
                counts[t] = 0.0
        out[p] = acc
    return out


def bm25_scores(pair_ptr: np.ndarray, entry_doc: np.ndarray, entry_weight: np.ndarray, rows_ptr: np.ndarray,
                rows_terms: np.ndarray, doc_counts: np.ndarray, terms: np.ndarray, bm25_idf: np.ndarray,
                norm: np.ndarray, k1: float, pair_w: np.ndarray, pair_q: np.ndarray, q_dense: np.ndarray) -> np.ndarray:
    """Per pair (a worker and a query), the worker's BM25 score for the query from the term counts of the
    documents it owns, as ``BM25Rows.weigh(SolvedCounts.sum_docs(...)) @ q_dense`` computes it, bit for bit.

    Pair ``p`` owns entries ``pair_ptr[p]:pair_ptr[p + 1]``, entry ``e`` document row ``entry_doc[e]`` with
    weight ``entry_weight[e]``. The documents' counts on ``terms`` are CSR arrays ``(rows_ptr, rows_terms,
    doc_counts)``, the columns numbered within ``terms`` (``SolvedCounts.entry_counts``); ``q_dense`` is
    ``len(terms) x queries``.
    """
    if len(pair_w) != len(pair_ptr) - 1 or len(pair_q) != len(pair_w):
        raise ValueError("one worker and one query per pair")

    def ints(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.int64)

    def reals(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.float64)

    pair_ptr, entry_doc, pair_w, pair_q = ints(pair_ptr), ints(entry_doc), ints(pair_w), ints(pair_q)
    args = (reals(entry_weight), rows_ptr, rows_terms, reals(doc_counts), ints(terms), reals(bm25_idf), reals(norm),
            float(k1))
    q_dense = np.ascontiguousarray(q_dense, dtype=np.float32)

    def read(lo: int, hi: int) -> np.ndarray:
        return np.asarray(_bm25(pair_ptr[lo:hi + 1], entry_doc, *args, pair_w[lo:hi], pair_q[lo:hi], q_dense))

    read_before = np.zeros(len(entry_doc) + 1, dtype=np.int64)  # the counts each pair reads, for the split
    np.cumsum(np.diff(rows_ptr)[entry_doc], out=read_before[1:])
    return np.concatenate(in_parts(read, np.diff(read_before[pair_ptr])))


@njit(cache=True)
def _best_per_segment(values: Any, indptr: Any, k: int, mask: Any) -> None:  # pragma: no cover - compiled
    for s in range(len(indptr) - 1):
        a, b = indptr[s], indptr[s + 1]
        if b - a > k:
            order = np.argsort(-values[a:b], kind="mergesort")  # stable: ties by position
            for i in range(k, b - a):
                mask[a + order[i]] = False


def best_per_segment(values: np.ndarray, indptr: np.ndarray, k: int) -> np.ndarray:
    """Mask of the ``k`` largest values of each segment ``values[indptr[s]:indptr[s + 1]]``, ties by position.

    Examples
    --------
    >>> best_per_segment(np.array([0.1, 0.5, 0.5, 0.2, 0.9]), np.array([0, 4, 5]), 2).tolist()
    [False, True, True, False, True]
    """
    mask = np.ones(len(values), dtype=bool)
    if len(values):
        _best_per_segment(np.ascontiguousarray(values, dtype=np.float64), np.ascontiguousarray(indptr, dtype=np.int64),
                          int(k), mask)
    return mask
