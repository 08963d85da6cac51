"""Numba kernels behind :func:`solver.exact.exact_path`.

The uniform-weight partial-OT path is a parametric min-cost flow on the
network ``source -> rows -> columns -> sink``: each row has capacity
``cap_row``, each column ``cap_col``, and row i sends to column j at cost
``C[i, j]`` without a bound. Successive shortest augmenting paths (Dijkstra
on reduced costs) give, after each augmentation, a min-cost flow of the value
reached so far; within one augmentation the cost grows linearly, so the log
of augmentations is the whole path lambda(s).

Conventions (private module; :mod:`solver.exact` validates inputs):

* Potentials ``pr`` (rows), ``pc`` (columns) and the scalar ``p_source``.
  The reduced cost of arc ``i -> j`` is ``C[i, j] + pr[i] - pc[j] >= 0``, and
  0 on arcs that carry flow. A row with spare supply ("free") always sits at
  ``p_source``; a column with spare demand always sits at 0 (as does the
  sink), and every other column at or below 0. That last bound lets a row be
  relaxed from its sorted cheapest columns only, up to the current best
  distance to the sink.
* Free rows are all at Dijkstra distance 0, so instead of scanning each of
  them the kernel keeps ``colmin[j] = min over free rows of C[i, j]``.
* Row and column totals only grow, so a unit leaves the free set once.
* A path is stored from its source row to its sink column as rows
  ``R_0..R_{m-1}`` and columns ``K_0..K_{m-1}``: forward arcs ``(R_t, K_t)``
  and backward arcs ``(R_t, K_{t-1})`` for ``t >= 1``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Cheapest columns kept per row (and rows per column), sorted by cost.
N_CANDIDATES = 48


@njit(cache=True)
def _grow(arr, need):
    """Return ``arr`` or a copy at least ``need`` long (doubling)."""
    if need <= arr.size:
        return arr
    out = np.empty(max(need, 2 * arr.size), arr.dtype)
    out[: arr.size] = arr
    return out


@njit(cache=True)
def _replace_top(vals, idx, k, v, j):
    """Replace the top of a max-heap of size ``k`` by ``(v, j)`` and sift down."""
    i = 0
    while True:
        c = 2 * i + 1
        if c >= k:
            break
        if c + 1 < k and vals[c + 1] > vals[c]:
            c += 1
        if vals[c] <= v:
            break
        vals[i] = vals[c]
        idx[i] = idx[c]
        i = c
    vals[i] = v
    idx[i] = j


@njit(cache=True)
def _sort_rows(vals, idx):
    """Sort every row of ``vals`` ascending, carrying ``idx`` along."""
    for r in range(vals.shape[0]):
        order = np.argsort(vals[r], kind="mergesort")
        v = vals[r][order]
        ix = idx[r][order]
        vals[r] = v
        idx[r] = ix


@njit(cache=True)
def candidates(C, k):
    """Sorted cheapest ``k`` columns of every row and rows of every column.

    One pass over ``C`` in memory order feeds a bounded max-heap per row and
    per column.

    Returns
    -------
    row_idx, row_val : ndarray of shape (n_x, min(k, n_y))
    col_idx, col_val : ndarray of shape (n_y, min(k, n_x))
    colmin, colarg : ndarray of shape (n_y,)
        Minimum of every column and the row reaching it.
    """
    nx, ny = C.shape
    kr = min(k, ny)
    kc = min(k, nx)
    row_idx = np.zeros((nx, kr), np.int32)
    row_val = np.full((nx, kr), np.inf)
    col_idx = np.zeros((ny, kc), np.int32)
    col_val = np.full((ny, kc), np.inf)
    col_top = np.full(ny, np.inf)
    for i in range(nx):
        rv = row_val[i]
        ri = row_idx[i]
        for j in range(ny):
            c = C[i, j]
            if c < rv[0]:
                _replace_top(rv, ri, kr, c, j)
            if c < col_top[j]:
                _replace_top(col_val[j], col_idx[j], kc, c, i)
                col_top[j] = col_val[j, 0]
    _sort_rows(row_val, row_idx)
    _sort_rows(col_val, col_idx)
    colmin = col_val[:, 0].copy()
    colarg = col_idx[:, 0].astype(np.int64)
    return row_idx, row_val, col_idx, col_val, colmin, colarg


@njit(cache=True)
def _sift_down(hk, hv, n, i):
    """Restore the min-heap order below position ``i``."""
    k = hk[i]
    v = hv[i]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and hk[c + 1] < hk[c]:
            c += 1
        if hk[c] >= k:
            break
        hk[i] = hk[c]
        hv[i] = hv[c]
        i = c
    hk[i] = k
    hv[i] = v


@njit(cache=True)
def _push(hk, hv, n, k, v):
    """Push ``(k, v)`` on a heap of size ``n`` (capacity is the caller's job)."""
    i = n
    while i > 0:
        p = (i - 1) >> 1
        if hk[p] <= k:
            break
        hk[i] = hk[p]
        hv[i] = hv[p]
        i = p
    hk[i] = k
    hv[i] = v
    return n + 1


@njit(cache=True)
def _rebuild_heap(hk, hv, key, col_done, demand, md):
    """Heap of every unsettled, saturated column with key below ``md``."""
    n = 0
    for j in range(key.size):
        if demand[j] == 0 and not col_done[j] and key[j] < md:
            hk[n] = key[j]
            hv[n] = j
            n += 1
    for i in range(n // 2 - 1, -1, -1):
        _sift_down(hk, hv, n, i)
    return n


@njit(cache=True)
def _relax_one(i, jj, nd, key, pred, demand, state, hk, hv, col_done):
    """Offer distance ``nd`` to column ``jj`` through row ``i``."""
    if nd < key[jj]:
        key[jj] = nd
        pred[jj] = i
        if demand[jj] > 0:
            if nd < state[0]:
                state[0] = nd
                state[1] = jj
        elif nd < state[0]:
            n = int(state[2])
            if n == hk.size:
                n = _rebuild_heap(hk, hv, key, col_done, demand, state[0])
            else:
                n = _push(hk, hv, n, nd, jj)
            state[2] = n


@njit(cache=True)
def _relax_row(
    C, i, base, row_idx, row_val, key, pred, pc, col_done, demand, state, hk, hv
):
    """Relax the arcs out of row ``i`` whose distance can beat the sink bound.

    ``state`` holds ``[best sink distance, its column, heap size, dense scans]``.
    Every column has potential <= 0, so ``base + C[i, j]`` bounds the distance
    through row i from below and the sorted list can stop early.
    """
    k = row_idx.shape[1]
    for t in range(k):
        c = row_val[i, t]
        if base + c >= state[0]:
            return
        jj = row_idx[i, t]
        if not col_done[jj]:
            _relax_one(
                i, jj, base + c - pc[jj], key, pred, demand, state, hk, hv, col_done
            )
    if k == C.shape[1]:
        return
    state[3] += 1
    for jj in range(C.shape[1]):
        c = C[i, jj]
        if base + c < state[0] and not col_done[jj]:
            _relax_one(
                i, jj, base + c - pc[jj], key, pred, demand, state, hk, hv, col_done
            )


@njit(cache=True)
def _start(colmin, colarg, p_source, pc, demand, key, pred, state):
    """Distances from the free rows (all at 0) to every column."""
    md = np.inf
    jd = -1
    for j in range(key.size):
        k = colmin[j] + p_source - pc[j]
        key[j] = k
        pred[j] = colarg[j]
        if demand[j] > 0 and k < md:
            md = k
            jd = j
    state[0] = md
    state[1] = jd


@njit(cache=True)
def _refresh_minima(
    C, row, colmin, colarg, col_idx, col_val, supply, free_rows, n_free
):
    """Recompute ``colmin`` of the columns whose minimum came from ``row``."""
    for j in range(colmin.size):
        if colarg[j] != row:
            continue
        colmin[j] = np.inf
        colarg[j] = -1
        for t in range(col_idx.shape[1]):
            i = col_idx[j, t]
            if supply[i] > 0:
                colmin[j] = col_val[j, t]
                colarg[j] = i
                break
        if colarg[j] >= 0 or col_idx.shape[1] == C.shape[0]:
            continue
        for t in range(n_free):
            i = free_rows[t]
            if C[i, j] < colmin[j]:
                colmin[j] = C[i, j]
                colarg[j] = i


# Rows of the edge pool: flow-carrying edges, one doubly linked list per column.
E_ROW, E_COL, E_FLOW, E_NEXT, E_PREV = 0, 1, 2, 3, 4


@njit(cache=True)
def _dijkstra(
    C, cand, colmin, colarg, p_source, pr, pc, supply, demand, edges, col_head, ws
):
    """Shortest reduced distances from all free rows until the sink is reached.

    Returns the distance to the sink, its column, and how many columns and
    rows were settled (listed in ``ws``).
    """
    row_idx, row_val = cand
    key, pred, col_done, col_dist, row_done, row_dist, row_edge = ws[:7]
    settled_cols, settled_rows, hk, hv, state = ws[7:]
    _start(colmin, colarg, p_source, pc, demand, key, pred, state)
    state[2] = _rebuild_heap(hk, hv, key, col_done, demand, state[0])
    ns_c = 0
    ns_r = 0
    while state[2] > 0:
        dj = hk[0]
        j = hv[0]
        if dj >= state[0]:
            break
        n = int(state[2]) - 1
        hk[0] = hk[n]
        hv[0] = hv[n]
        _sift_down(hk, hv, n, 0)
        state[2] = n
        if col_done[j] or dj > key[j]:
            continue
        col_done[j] = True
        col_dist[j] = dj
        settled_cols[ns_c] = j
        ns_c += 1
        # Backward arcs carry reduced cost 0: reach the rows feeding j.
        e = col_head[j]
        while e >= 0:
            i = edges[E_ROW, e]
            if supply[i] == 0 and not row_done[i]:
                row_done[i] = True
                row_dist[i] = dj
                row_edge[i] = e
                settled_rows[ns_r] = i
                ns_r += 1
                _relax_row(
                    C,
                    i,
                    dj + pr[i],
                    row_idx,
                    row_val,
                    key,
                    pred,
                    pc,
                    col_done,
                    demand,
                    state,
                    hk,
                    hv,
                )
            e = edges[E_NEXT, e]
    return state[0], int(state[1]), ns_c, ns_r


@njit(cache=True)
def _move_potentials(dist, ns_c, ns_r, pr, pc, ws):
    """Settled nodes move by (their distance - dist); reset their flags."""
    col_done, col_dist, row_done, row_dist = ws[2], ws[3], ws[4], ws[5]
    settled_cols, settled_rows = ws[7], ws[8]
    for t in range(ns_c):
        j = settled_cols[t]
        pc[j] += col_dist[j] - dist
        col_done[j] = False
    for t in range(ns_r):
        i = settled_rows[t]
        pr[i] += row_dist[i] - dist
        row_done[i] = False


@njit(cache=True)
def _walk(jt, pred, row_edge, edges, supply, demand, walk_rows, walk_cols):
    """Trace the path back from sink column ``jt``; return its length and bottleneck.

    The path is written sink first into ``walk_rows`` / ``walk_cols``.
    """
    m = 0
    j = jt
    delta = demand[jt]
    while True:
        i = pred[j]
        walk_rows[m] = i
        walk_cols[m] = j
        m += 1
        if supply[i] > 0:
            return m, min(delta, supply[i])
        e = row_edge[i]
        delta = min(delta, edges[E_FLOW, e])
        j = edges[E_COL, e]


@njit(cache=True)
def _new_edge(edges, col_head, pool, i, j):
    """Add an empty edge (i, j) at the head of column j's list."""
    if pool[0] >= 0:
        e = pool[0]
        pool[0] = edges[E_NEXT, e]
    else:
        e = pool[1]
        pool[1] += 1
        if e >= edges.shape[1]:
            grown = np.empty((5, 2 * edges.shape[1]), np.int64)
            grown[:, : edges.shape[1]] = edges
            edges = grown
    edges[E_ROW, e] = i
    edges[E_COL, e] = j
    edges[E_FLOW, e] = 0
    edges[E_PREV, e] = -1
    edges[E_NEXT, e] = col_head[j]
    if col_head[j] >= 0:
        edges[E_PREV, col_head[j]] = e
    col_head[j] = e
    return edges, e


@njit(cache=True)
def _drop_edge(edges, col_head, pool, e):
    """Unlink edge ``e`` from its column and return it to the pool."""
    if edges[E_PREV, e] >= 0:
        edges[E_NEXT, edges[E_PREV, e]] = edges[E_NEXT, e]
    else:
        col_head[edges[E_COL, e]] = edges[E_NEXT, e]
    if edges[E_NEXT, e] >= 0:
        edges[E_PREV, edges[E_NEXT, e]] = edges[E_PREV, e]
    edges[E_NEXT, e] = pool[0]
    pool[0] = e


@njit(cache=True)
def _augment(edges, col_head, pool, rows, cols, row_edge, delta):
    """Push ``delta`` along the path: forward arcs gain, backward arcs lose."""
    for t in range(rows.size):
        i = rows[t]
        j = cols[t]
        e = col_head[j]
        while e >= 0 and edges[E_ROW, e] != i:
            e = edges[E_NEXT, e]
        if e < 0:
            edges, e = _new_edge(edges, col_head, pool, i, j)
        edges[E_FLOW, e] += delta
        if t > 0:
            e = row_edge[i]
            edges[E_FLOW, e] -= delta
            if edges[E_FLOW, e] == 0:
                _drop_edge(edges, col_head, pool, e)
    return edges


@njit(cache=True)
def _log_path(C, log, n_aug, delta, m, walk_rows, walk_cols):
    """Append the path (source first), its flow and its cost to ``log``."""
    aug_delta, aug_cost, path_ptr, path_rows, path_cols = log
    # Each array is checked on its own: path_ptr is one longer than the
    # others, so growing it only when they grow let it fall behind.
    aug_delta = _grow(aug_delta, n_aug + 1)
    aug_cost = _grow(aug_cost, n_aug + 1)
    path_ptr = _grow(path_ptr, n_aug + 2)
    p0 = path_ptr[n_aug]
    path_rows = _grow(path_rows, p0 + m)
    path_cols = _grow(path_cols, p0 + m)
    length = 0.0
    for t in range(m):
        i = walk_rows[m - 1 - t]
        j = walk_cols[m - 1 - t]
        path_rows[p0 + t] = i
        path_cols[p0 + t] = j
        length += C[i, j]
        if t > 0:
            length -= C[i, path_cols[p0 + t - 1]]
    aug_delta[n_aug] = delta
    aug_cost[n_aug] = length
    path_ptr[n_aug + 1] = p0 + m
    return aug_delta, aug_cost, path_ptr, path_rows, path_cols


@njit(cache=True)
def _workspace(nx, ny):
    """Dijkstra arrays; only the entries a run touches are reset after it."""
    return (
        np.empty(ny),  # key: tentative distance of each column
        np.empty(ny, np.int64),  # pred: row before each column
        np.zeros(ny, np.bool_),  # col_done
        np.empty(ny),  # col_dist
        np.zeros(nx, np.bool_),  # row_done
        np.empty(nx),  # row_dist
        np.empty(nx, np.int64),  # row_edge: backward arc that reached the row
        np.empty(ny, np.int64),  # settled_cols
        np.empty(nx, np.int64),  # settled_rows
        np.empty(2 * ny + 16),  # heap keys
        np.empty(2 * ny + 16, np.int64),  # heap columns
        np.zeros(4),  # state: sink distance, sink column, heap size, dense scans
    )


@njit(cache=True)
def _leave_free(r0, free_rows, free_pos, n_free):
    """Remove row ``r0`` from the list of free rows; return the new count."""
    pos = free_pos[r0]
    last = free_rows[n_free - 1]
    free_rows[pos] = last
    free_pos[last] = pos
    return n_free - 1


@njit(cache=True)
def ssp_path(C, cap_row, cap_col, stop_flow, n_candidates):
    """Run successive shortest paths until the flow reaches ``stop_flow``.

    Parameters
    ----------
    C : ndarray of shape (n_x, n_y), float64 or float32, C-contiguous
    cap_row, cap_col : int
        Integer capacities of rows and columns (``n_x * cap_row ==
        n_y * cap_col``).
    stop_flow : int
        Stop once the flow reaches this value (the last augmentation is cut
        short); negative for the whole path.
    n_candidates : int
        Length of the sorted candidate lists.

    Returns
    -------
    tuple of arrays, unpacked by :func:`solver.exact.exact_path`.
    """
    nx, ny = C.shape
    total = nx * cap_row
    if stop_flow < 0 or stop_flow > total:
        stop_flow = total
    supply = np.full(nx, cap_row, np.int64)
    demand = np.full(ny, cap_col, np.int64)
    pr = np.zeros(nx)
    pc = np.zeros(ny)
    row_idx, row_val, col_idx, col_val, colmin, colarg = candidates(C, n_candidates)
    p_source = -colmin.min()
    free_rows = np.arange(nx)
    free_pos = np.arange(nx)
    n_free = nx
    edges = np.empty((5, nx + ny + 16), np.int64)
    col_head = np.full(ny, -1, np.int64)
    pool = np.array([-1, 0])  # head of the free list, edges used so far
    ws = _workspace(nx, ny)
    walk_rows = np.empty(nx, np.int64)
    walk_cols = np.empty(nx, np.int64)
    n_log = nx + ny + 16
    log = (
        np.empty(n_log, np.int64),
        np.empty(n_log),
        np.zeros(n_log + 1, np.int64),
        np.empty(4 * n_log, np.int64),
        np.empty(4 * n_log, np.int64),
    )
    entry_x = np.full(nx, -1, np.int64)
    entry_y = np.full(ny, -1, np.int64)
    first_col = np.full(nx, -1, np.int64)
    first_row = np.full(ny, -1, np.int64)

    flow = 0
    n_aug = 0
    while flow < stop_flow:
        dist, jt, ns_c, ns_r = _dijkstra(
            C,
            (row_idx, row_val),
            colmin,
            colarg,
            p_source,
            pr,
            pc,
            supply,
            demand,
            edges,
            col_head,
            ws,
        )
        _move_potentials(dist, ns_c, ns_r, pr, pc, ws)
        p_source -= dist
        m, delta = _walk(jt, ws[1], ws[6], edges, supply, demand, walk_rows, walk_cols)
        delta = min(delta, stop_flow - flow)
        log = _log_path(C, log, n_aug, delta, m, walk_rows, walk_cols)
        p0 = log[2][n_aug]
        rows = log[3][p0 : p0 + m]
        cols = log[4][p0 : p0 + m]
        edges = _augment(edges, col_head, pool, rows, cols, ws[6], delta)

        # Source row and sink column; entry of units into the support.
        r0 = rows[0]
        jt = cols[m - 1]
        if entry_x[r0] < 0:
            entry_x[r0] = flow
            first_col[r0] = cols[0]
        if entry_y[jt] < 0:
            entry_y[jt] = flow
            first_row[jt] = rows[m - 1]
        supply[r0] -= delta
        demand[jt] -= delta
        flow += delta
        n_aug += 1
        if supply[r0] == 0:
            pr[r0] = p_source
            n_free = _leave_free(r0, free_rows, free_pos, n_free)
            _refresh_minima(
                C, r0, colmin, colarg, col_idx, col_val, supply, free_rows, n_free
            )

    n_path = log[2][n_aug]
    return (
        log[0][:n_aug].copy(),
        log[1][:n_aug].copy(),
        log[2][: n_aug + 1].copy(),
        log[3][:n_path].copy(),
        log[4][:n_path].copy(),
        entry_x,
        entry_y,
        first_col,
        first_row,
        pr,
        pc,
        p_source,
        supply,
        demand,
        np.array([n_aug, int(ws[11][3])]),
    )


@njit(cache=True)
def replay_plan(nx, ny, aug_delta, path_ptr, path_rows, path_cols, n_full, frac):
    """Rebuild the flow after ``n_full`` augmentations plus ``frac`` of the next.

    Returns a dense float64 flow of shape (nx, ny) in flow units.
    """
    flow = np.zeros((nx, ny))
    n_aug = aug_delta.size
    for k in range(min(n_full + 1, n_aug)):
        amount = float(aug_delta[k]) if k < n_full else frac
        if amount == 0.0:
            continue
        p0 = path_ptr[k]
        for t in range(path_ptr[k + 1] - p0):
            i = path_rows[p0 + t]
            flow[i, path_cols[p0 + t]] += amount
            if t > 0:
                flow[i, path_cols[p0 + t - 1]] -= amount
    return flow
