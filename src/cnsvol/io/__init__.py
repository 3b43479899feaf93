"""Reading masks and images: formats, geometry in RAS+ mm, label selection, plausibility.

* :mod:`.read`: :func:`read_mask` and :func:`read_image`, the entry points;
* :mod:`.mask`: the :class:`Mask` type and how stored values become integer labels;
* :mod:`.nifti` (nibabel, and the in-memory ``.nii.gz`` fast path) and :mod:`.itk` (NRRD and
  MetaImage through SimpleITK, where the LPS to RAS flip is done once);
* :mod:`.files`: file-level checks (regular file, size limit, 3D);
* :mod:`.labelsets`: label selection and the BraTS label presets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover  (names for type checkers; loaded lazily below)
    from .files import DEFAULT_MAX_BYTES  # noqa: F401
    from .labelsets import LABEL_PRESETS, parse_labels  # noqa: F401
    from .mask import DEFAULT_THRESHOLD, Mask, Storage, mask_from_array  # noqa: F401
    from .read import mask_format, read_image, read_mask  # noqa: F401

_EXPORTS = {
    "DEFAULT_MAX_BYTES": "files",
    "DEFAULT_THRESHOLD": "mask",
    "LABEL_PRESETS": "labelsets",
    "Mask": "mask",
    "Storage": "mask",
    "mask_format": "read",
    "mask_from_array": "mask",
    "parse_labels": "labelsets",
    "read_image": "read",
    "read_mask": "read",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
