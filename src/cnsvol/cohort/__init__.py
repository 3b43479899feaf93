"""Cohort inputs and cohort numbers: the manifest (and BIDS trees), PFS tables and their join to
the imaging results, and the cohort statistics.

* :mod:`.manifest`: :func:`read_manifest`, a validated :class:`Manifest` of
  :class:`SubjectPlan`; :mod:`.bids`: a manifest from a BIDS derivatives tree;
* :mod:`.pfs_table`: :func:`read_pfs`, a validated :class:`PfsTable`; :mod:`.join`: the PFS
  columns of a subject and the ids only one side has;
* :mod:`.stats`: rates, arm comparison, Kaplan-Meier, log-rank, Cox, landmark analysis;
* :mod:`.tabular`: reading input tables; :mod:`.vocabulary`: the yes/no and event words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover  (names for type checkers; loaded lazily below)
    from .join import join_ids, pfs_columns  # noqa: F401
    from .manifest import Manifest, Scan, SubjectPlan, read_manifest  # noqa: F401
    from .pfs_table import PfsTable, read_pfs  # noqa: F401
    from .vocabulary import parse_event, parse_yes_no  # noqa: F401

_EXPORTS = {
    "Manifest": "manifest",
    "PfsTable": "pfs_table",
    "Scan": "manifest",
    "SubjectPlan": "manifest",
    "join_ids": "join",
    "parse_event": "vocabulary",
    "parse_yes_no": "vocabulary",
    "pfs_columns": "join",
    "read_manifest": "manifest",
    "read_pfs": "pfs_table",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
