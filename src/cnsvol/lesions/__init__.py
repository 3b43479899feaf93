"""Finding and measuring lesions: connected components from runs of foreground voxels, and per
lesion volume, centroid, bounding box, Feret diameters, measurability and measurement band.

* :mod:`.find`: :func:`find_lesions` (components, the id rule, minimum size);
* :mod:`.lesion`: :class:`Lesion`, :class:`LesionSet` and :data:`LESION_COLUMNS`;
* :mod:`.runs`: runs of foreground voxels and their connectivity graph;
* :mod:`.diameters`: exact voxel-corner Feret diameters;
* :mod:`.geometry`: small geometric helpers (voxel to world, the axial axis);
* :mod:`.compartments`: tumour-compartment label conventions and compartment volumes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover  (names for type checkers; loaded lazily below)
    from .find import DEFAULT_CONNECTIVITY, DEFAULT_MEASURABLE_MM, find_lesions  # noqa: F401
    from .find import label_components  # noqa: F401
    from .lesion import LESION_COLUMNS, Lesion, LesionSet  # noqa: F401

_EXPORTS = {
    "DEFAULT_CONNECTIVITY": "find",
    "DEFAULT_MEASURABLE_MM": "find",
    "LESION_COLUMNS": "lesion",
    "Lesion": "lesion",
    "LesionSet": "lesion",
    "find_lesions": "find",
    "label_components": "find",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
