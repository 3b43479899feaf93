"""Connected components of small undirected graphs (lesion correspondences)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TypeVar

__all__ = ["component_roots"]

N = TypeVar("N", bound=Hashable)


def component_roots(nodes: Iterable[N], edges: Iterable[tuple[N, N]]) -> dict[N, N]:
    """Map every node to the smallest node of its connected component (union-find).

    Nodes must be mutually orderable; the root is deterministic whatever the edge order.
    """
    parent: dict[N, N] = {n: n for n in nodes}

    def find(x: N) -> N:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            if rb < ra:  # type: ignore[operator]
                ra, rb = rb, ra
            parent[rb] = ra
    return {n: find(n) for n in parent}
