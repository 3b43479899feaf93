"""Runs of foreground voxels: the sparse form in which lesions are found and measured.

A run is a maximal stretch of consecutive foreground voxels along the fastest-varying storage
axis (``fast``: axis 0 of a Fortran-ordered array, axis 2 of a C-ordered one), inside one
*row* (one position on the two other axes, ``mid`` and ``slow``). With ``values`` given (an
instance-labelled mask), a run also ends where the label value changes.

A brain-lesion mask holds a few thousand runs against millions of voxels, so connectivity,
counts, centroids, bounding boxes, boundary faces and the row extremes that diameters need are
all computed per run, in a handful of vectorised passes:

* two runs in rows that are neighbours in the ``(mid, slow)`` plane are 26-connected when
  their ``fast`` ranges come within one voxel of each other, 6-connected when the rows share a
  face and the ranges overlap; 18-connectivity is the first rule for face-sharing rows and the
  second for rows that share an edge only;
* the runs of one neighbouring row that meet a given run form a contiguous range of that row's
  runs (runs of a row are sorted and disjoint), found with two binary searches.

Components are then the connected components of the run graph
(:func:`scipy.sparse.csgraph.connected_components`), the same partition of voxels as any
voxel-level labelling with the same connectivity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Runs", "find_runs", "neighbour_pairs", "run_components"]

# forward row offsets (d_mid, d_slow) in the (mid, slow) plane; the other four are their
# mirror images and give the same pairs the other way round
_FACE_OFFSETS = ((1, 0), (0, 1))
_EDGE_OFFSETS = ((1, 1), (-1, 1))


@dataclass(frozen=True)
class Runs:
    """Runs sorted by ``(row, start)``, as the voxels are sorted in storage order."""

    shape: tuple[int, int, int]
    axes: tuple[int, int, int]  # voxel axes (fast, mid, slow)
    start: np.ndarray  # first fast index of the run (int64)
    end: np.ndarray  # last fast index, inclusive
    row: np.ndarray  # mid + n_mid * slow
    first: np.ndarray  # position of the run's first voxel in the flat foreground index

    @property
    def n_fast(self) -> int:
        return self.shape[self.axes[0]]

    @property
    def n_mid(self) -> int:
        return self.shape[self.axes[1]]

    @property
    def n_slow(self) -> int:
        return self.shape[self.axes[2]]

    @property
    def length(self) -> np.ndarray:
        return self.end - self.start + 1

    @property
    def mid(self) -> np.ndarray:
        return self.row % self.n_mid

    @property
    def slow(self) -> np.ndarray:
        return self.row // self.n_mid

    def __len__(self) -> int:
        return len(self.start)


def find_runs(
    flat_index: np.ndarray,
    shape: tuple[int, int, int],
    order: str,
    values: np.ndarray | None = None,
) -> Runs:
    """Runs of the foreground voxels whose flat indices (in ``order``, sorted) are given.

    ``values``, when given, holds each voxel's label value; runs then also break where it
    changes.
    """
    axes = (0, 1, 2) if order == "F" else (2, 1, 0)
    n_fast = int(shape[axes[0]])
    idx = np.asarray(flat_index, dtype=np.int64)
    if idx.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Runs(tuple(shape), axes, empty, empty, empty, empty)  # type: ignore[arg-type]
    row, pos = np.divmod(idx, n_fast)
    brk = np.empty(idx.size, dtype=bool)
    brk[0] = True
    np.not_equal(np.diff(idx), 1, out=brk[1:])
    brk[1:] |= pos[1:] == 0  # a new row always starts a run
    if values is not None:
        brk[1:] |= values[1:] != values[:-1]
    first = np.flatnonzero(brk)
    last = np.r_[first[1:] - 1, idx.size - 1]
    return Runs(tuple(shape), axes, pos[first], pos[last], row[first], first)  # type: ignore[arg-type]


def _pairs_towards(runs: Runs, d_mid: int, d_slow: int, slack: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a, b) of runs with b in the row at offset (d_mid, d_slow) from a's row and b's
    fast range within ``slack`` voxels of a's (``slack`` 0: overlapping)."""
    mid, slow = runs.mid, runs.slow
    ok = (mid + d_mid >= 0) & (mid + d_mid < runs.n_mid) & (slow + d_slow < runs.n_slow)
    a = np.flatnonzero(ok)
    if a.size == 0:
        return a, a
    width = runs.n_fast + 2  # row bands of the sort keys never overlap
    key_start = runs.row * width + runs.start + 1
    key_end = runs.row * width + runs.end + 1
    target = (runs.row[a] + d_mid + runs.n_mid * d_slow) * width
    lo = np.searchsorted(key_end, target + runs.start[a] - slack + 1, side="left")
    hi = np.searchsorted(key_start, target + runs.end[a] + slack + 1, side="right")
    count = np.maximum(hi - lo, 0)
    total = int(count.sum())
    src = np.repeat(a, count)
    offset = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    dst = np.repeat(lo, count) + offset
    return src, dst


def neighbour_pairs(runs: Runs, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of distinct runs joined under ``connectivity`` (each pair once)."""
    if connectivity == 26:
        rules = [(o, 1) for o in _FACE_OFFSETS + _EDGE_OFFSETS]
    elif connectivity == 18:
        rules = [(o, 1) for o in _FACE_OFFSETS] + [(o, 0) for o in _EDGE_OFFSETS]
    elif connectivity == 6:
        rules = [(o, 0) for o in _FACE_OFFSETS]
    else:
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity!r}")
    parts = [_pairs_towards(runs, dm, ds, slack) for (dm, ds), slack in rules]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def face_overlaps(runs: Runs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (a, b) of runs in face-sharing rows and the number of voxel faces they share."""
    parts = [_pairs_towards(runs, dm, ds, 0) for dm, ds in _FACE_OFFSETS]
    a = np.concatenate([p[0] for p in parts])
    b = np.concatenate([p[1] for p in parts])
    shared = np.minimum(runs.end[a], runs.end[b]) - np.maximum(runs.start[a], runs.start[b]) + 1
    return a, b, shared


def run_components(runs: Runs, connectivity: int) -> tuple[np.ndarray, int]:
    """Component number (0..n-1) of every run under ``connectivity``, and n."""
    if len(runs) == 0:
        return np.zeros(0, dtype=np.int64), 0
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    src, dst = neighbour_pairs(runs, connectivity)
    n = len(runs)
    graph = coo_matrix((np.ones(src.size, dtype=np.int8), (src, dst)), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64), int(count)
