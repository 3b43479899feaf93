"""Tracks: lesion identities that persist over all timepoints of one subject.

Consecutive timepoints are matched (:func:`cnsvol.matching.match`, t-1 -> t). A track is a
connected component of the graph whose nodes are (timepoint, lesion) and whose edges are those
correspondences, so a lesion that splits stays one track, lesions that merge become one track
from their first appearance, and a lesion that disappears and a new one that appears elsewhere
are different tracks. (A lesion that vanishes and later reappears starts a new track: it is new
disease.)

Track ids: ordered by the first timepoint at which the track exists, then by its smallest lesion
id there (lesion ids are ordered by size), numbered from 1.

The status of a track at timepoint t > 0 is the status of its correspondence(s) in the t-1 -> t
matching (``matched``, ``split``, ``merged``, ``complex``, ``new``, ``resolved``; a track made of
several correspondences with different statuses at t, e.g. one piece matched and another
resolved, is ``complex``). At the baseline its status
is ``baseline``; a track that appears later is ``new`` at its first timepoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..lesions.geometry import sphere_equivalent_diameter_mm
from .graphs import component_roots
from ..lesions.lesion import LesionSet
from .matching import Matching
from .status import TrackStatus

__all__ = ["TrackState", "build_tracks"]


@dataclass(frozen=True)
class TrackState:
    """One track at one timepoint (absent timepoints after ``resolved`` have no state)."""

    track_id: int
    timepoint_index: int
    lesion_ids: tuple[int, ...]
    status: TrackStatus
    volume_mm3: float
    min_detectable_change_mm3: float
    longest_diameter_mm: float

    @property
    def sphere_equivalent_diameter_mm(self) -> float:
        return sphere_equivalent_diameter_mm(self.volume_mm3)


def build_tracks(sets: list[LesionSet], matchings: list[Matching]) -> list[list[TrackState]]:
    """Per track (index = track_id - 1), its states over time, in timepoint order."""
    if len(matchings) != len(sets) - 1:
        raise ValueError("need one matching per pair of consecutive timepoints")
    all_nodes = [(t, les.lesion_id) for t, ls in enumerate(sets) for les in ls.lesions]
    # every correspondence of the t-1 -> t matching, keyed on one of its lesions, so that its
    # status can be attached to its track at t (resolved pieces included)
    statuses: list[tuple[int, tuple[int, int], TrackStatus]] = []
    edges: list[tuple[tuple[int, int], tuple[int, int]]] = []
    for t, m in enumerate(matchings, start=1):
        for c in m.correspondences:
            nodes = [(t - 1, i) for i in c.before_ids] + [(t, i) for i in c.after_ids]
            edges += [(nodes[0], n) for n in nodes[1:]]
            statuses.append((t, nodes[0], c.status))
    roots = component_roots(all_nodes, edges)

    members: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for node, root in roots.items():
        members.setdefault(root, []).append(node)
    status_sets: dict[tuple[tuple[int, int], int], set[TrackStatus]] = {}
    for t, node, status in statuses:
        status_sets.setdefault((roots[node], t), set()).add(status)
    ordered = sorted(members.values(), key=lambda ns: min(ns))  # (first t, smallest id)

    by_id = [ls.by_id() for ls in sets]
    tracks: list[list[TrackState]] = []
    for track_id, nodes in enumerate(ordered, start=1):
        root = roots[nodes[0]]
        per_t: dict[int, list[int]] = {}
        for t, lid in nodes:
            per_t.setdefault(t, []).append(lid)
        states = []
        for t in range(len(sets)):
            ids = tuple(sorted(per_t.get(t, [])))
            found = status_sets.get((root, t), set())
            if ids:
                if t == 0:
                    status = TrackStatus.BASELINE
                else:
                    status = found.pop() if len(found) == 1 else TrackStatus.COMPLEX
                lesions = [by_id[t][i] for i in ids]
                states.append(
                    TrackState(
                        track_id=track_id,
                        timepoint_index=t,
                        lesion_ids=ids,
                        status=status,
                        volume_mm3=float(sum(les.volume_mm3 for les in lesions)),
                        min_detectable_change_mm3=float(
                            sum(les.min_detectable_change_mm3 for les in lesions)
                        ),
                        longest_diameter_mm=max(les.longest_diameter_mm for les in lesions),
                    )
                )
            elif found == {TrackStatus.RESOLVED}:
                states.append(
                    TrackState(track_id, t, (), TrackStatus.RESOLVED, 0.0, 0.0, 0.0)
                )
        tracks.append(states)
    return tracks
