"""Tumour compartments of multi-label glioma (and brain-metastasis) masks.

A compartment convention says which stored label is which tissue. The compartments are
``enhancing`` (enhancing tumour), ``nonenhancing`` (non-enhancing tumour core / necrosis),
``edema`` (surrounding FLAIR hyperintensity) and ``cavity`` (resection cavity):

``brats2015``
    BraTS 2012-2016 glioma: 1 necrosis, 2 oedema, 3 non-enhancing tumour, 4 enhancing tumour
    (labels 1 and 3 are both the non-enhancing compartment).
``brats2021``
    BraTS 2017-2021 glioma: 1 necrotic / non-enhancing tumour core (NCR), 2 peritumoural
    oedema (ED), 4 enhancing tumour (ET).
``brats2023`` (also ``brats2024``)
    BraTS 2023+ adult glioma (post-treatment): 1 non-enhancing tumour core (NETC),
    2 surrounding non-enhancing FLAIR hyperintensity (SNFH), 3 enhancing tumour (ET),
    4 resection cavity (RC).
``brats-mets``
    BraTS-METS 2023+: labels 1-3 as in ``brats2023`` (and 4 resection cavity where present).
``lumiere`` (also ``audit``)
    LUMIERE (and AUDIT's BraTS 2024 re-labelling): 1 enhancing (ENH), 2 non-enhancing /
    necrosis (NEC), 3 oedema (EDE).

How the volumes are assigned:

* per timepoint, the volume of every compartment of the whole mask; the compartments sum to
  the whole-tumour volume (every non-zero label);
* per lesion, the lesions being the connected components of the response region (e.g. the
  enhancing compartment for RANO 2.0), every compartment voxel of the same whole-tumour
  component is given to the nearest lesion voxel (Euclidean, in mm); voxels of a whole-tumour
  component holding no lesion (oedema alone, a cavity alone) are counted in the timepoint's
  volumes only.

A mask holding a label that the convention does not define is refused: it is most likely the
wrong convention.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..columns import Column
from ..errors import MaskError

if TYPE_CHECKING:  # numpy is imported where it is used: the command line's --help needs the
    import numpy as np  # convention names only, and starts without numpy

    from .lesion import LesionSet

__all__ = [
    "COMPARTMENTS",
    "COMPARTMENT_COLUMNS",
    "CONVENTIONS",
    "CompartmentConvention",
    "compartment_cells",
    "get_convention",
    "with_compartments",
]

COMPARTMENTS: tuple[str, ...] = ("enhancing", "nonenhancing", "edema", "cavity")
"""Every compartment name, in table-column order."""

COMPARTMENT_COLUMNS: tuple[Column, ...] = tuple(
    Column(f"{name}_volume_mm3", "float64", "mm3",
           f"volume of the {text} compartment (with a compartment convention; else empty)")
    for name, text in zip(COMPARTMENTS, ("enhancing tumour", "non-enhancing tumour / necrosis",
                                         "oedema (FLAIR hyperintensity)", "resection cavity"))
)


@dataclass(frozen=True)
class CompartmentConvention:
    """Which stored label value is which compartment."""

    name: str
    labels: dict[int, str]
    source: str

    def labels_of(self, compartments: tuple[str, ...]) -> tuple[int, ...]:
        """The label values of the named compartments (sorted)."""
        unknown = [c for c in compartments if c not in COMPARTMENTS]
        if unknown:
            raise ValueError(f"unknown compartment(s) {', '.join(unknown)}: use "
                             f"{', '.join(COMPARTMENTS)}")
        return tuple(sorted(v for v, c in self.labels.items() if c in compartments))

    def describe(self) -> str:
        return ", ".join(f"{v} {c}" for v, c in sorted(self.labels.items()))


_BRATS23 = {1: "nonenhancing", 2: "edema", 3: "enhancing", 4: "cavity"}
_LUMIERE = {1: "enhancing", 2: "nonenhancing", 3: "edema"}

CONVENTIONS: dict[str, CompartmentConvention] = {
    "brats2015": CompartmentConvention(
        "brats2015", {1: "nonenhancing", 2: "edema", 3: "nonenhancing", 4: "enhancing"},
        "Menze BH et al., IEEE Trans Med Imaging 2015;34(10):1993-2024 (BraTS 2012-2016): "
        "1 necrosis, 2 oedema, 3 non-enhancing tumour, 4 enhancing tumour"),
    "brats2021": CompartmentConvention(
        "brats2021", {1: "nonenhancing", 2: "edema", 4: "enhancing"},
        "Baid U et al., arXiv:2107.02314 (BraTS 2021): 1 NCR, 2 ED, 4 ET"),
    "brats2023": CompartmentConvention(
        "brats2023", _BRATS23,
        "de Verdier MC et al., arXiv:2405.18368 (BraTS 2024 post-treatment glioma): "
        "1 NETC, 2 SNFH, 3 ET, 4 RC"),
    "brats-mets": CompartmentConvention(
        "brats-mets", _BRATS23,
        "Moawad AW et al., arXiv:2306.00838 (BraTS-METS 2023): 1 NETC, 2 SNFH, 3 ET"),
    "lumiere": CompartmentConvention(
        "lumiere", _LUMIERE,
        "Suter Y et al., Sci Data 2022;9:768 (LUMIERE): 1 enhancing, 2 necrosis, 3 oedema"),
}
CONVENTIONS["brats2024"] = CONVENTIONS["brats2023"]
CONVENTIONS["audit"] = CONVENTIONS["lumiere"]


def get_convention(name: str | CompartmentConvention) -> CompartmentConvention:
    """A convention by name (see the module docstring)."""
    if isinstance(name, CompartmentConvention):
        return name
    key = str(name).strip().lower()
    if key not in CONVENTIONS:
        raise ValueError(f"unknown compartment convention {name!r}: use one of "
                         f"{', '.join(CONVENTIONS)}")
    return CONVENTIONS[key]


def compartment_cells(volumes: dict[str, float]) -> dict[str, float | None]:
    """The table cells ``<compartment>_volume_mm3`` of a volume dict (empty cells without a
    convention, or for a compartment the convention does not have)."""
    return {f"{c}_volume_mm3": volumes.get(c) for c in COMPARTMENTS}


def check_labels(data: np.ndarray, convention: CompartmentConvention, where: object) -> None:
    """Refuse a mask holding labels the convention does not define."""
    import numpy as np

    present = np.unique(data)
    present = present[present > 0]
    extra = sorted(set(present.tolist()) - set(convention.labels))
    if extra:
        raise MaskError(
            where,
            f"labels {', '.join(map(str, extra))} are not in the {convention.name} compartment "
            f"convention ({convention.describe()}); labels present: "
            f"{', '.join(map(str, present.tolist()))}",
            "give the convention the mask was made with (--compartments "
            f"{', '.join(sorted(set(CONVENTIONS) - {convention.name}))}), or select the labels "
            "to measure with --labels",
        )


def mask_volumes(data: np.ndarray, convention: CompartmentConvention,
                 voxel_volume_mm3: float) -> dict[str, float]:
    """Volume of every compartment of the convention in the whole mask (mm3)."""
    import numpy as np

    counts = np.bincount(data.reshape(-1), minlength=max(convention.labels) + 1)
    out = {c: 0.0 for c in COMPARTMENTS if c in convention.labels.values()}
    for value, name in convention.labels.items():
        out[name] += float(counts[value]) * voxel_volume_mm3
    return out


def lesion_volumes(data: np.ndarray, lesion_image: np.ndarray, lesion_ids: list[int],
                   convention: CompartmentConvention, spacing_mm: tuple[float, float, float],
                   voxel_volume_mm3: float, connectivity: int) -> dict[int, dict[str, float]]:
    """Per lesion, the volume of every compartment in its share of the whole tumour (module
    docstring): compartment voxels go to the nearest lesion of their whole-tumour component."""
    import numpy as np

    from scipy import ndimage

    names = sorted(set(convention.labels.values()), key=COMPARTMENTS.index)
    out = {lid: dict.fromkeys(names, 0.0) for lid in lesion_ids}
    if not lesion_ids:
        return out
    structure = ndimage.generate_binary_structure(3, {6: 1, 18: 2}.get(connectivity, 3))
    tumour = data > 0
    nz = np.nonzero(tumour)
    lo = [int(a.min()) for a in nz]
    hi = [int(a.max()) + 1 for a in nz]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    labels, lesion = data[box], lesion_image[box]
    comps, _ = ndimage.label(tumour[box], structure=structure)
    owner = np.zeros(labels.shape, dtype=np.int64)
    lesion_comps = np.unique(comps[lesion > 0])
    for comp in lesion_comps.tolist():
        in_comp = comps == comp
        ids = np.unique(lesion[in_comp & (lesion > 0)])
        if len(ids) == 1:
            owner[in_comp] = int(ids[0])
            continue
        # several lesions share this whole-tumour component: nearest lesion voxel, in mm
        sub = tuple(slice(int(a.min()), int(a.max()) + 1) for a in np.nonzero(in_comp))
        seeds = np.where(in_comp[sub], lesion[sub], 0)
        _, idx = ndimage.distance_transform_edt(seeds == 0, sampling=spacing_mm,
                                                return_indices=True)
        nearest = seeds[tuple(idx)]
        owner[sub] = np.where(in_comp[sub], nearest, owner[sub])
    pick = owner > 0
    pairs = np.stack([owner[pick], labels[pick].astype(np.int64)])
    keys, counts = np.unique(pairs, axis=1, return_counts=True)
    for (lid, value), n in zip(keys.T.tolist(), counts.tolist()):
        name = convention.labels.get(int(value))
        if name is not None and int(lid) in out:
            out[int(lid)][name] += float(n) * voxel_volume_mm3
    return out


def with_compartments(lesions: LesionSet, full: np.ndarray,
                      convention: CompartmentConvention) -> LesionSet:
    """``lesions`` (found on the response region of a mask) with the compartment volumes of
    the whole label array ``full`` (same grid): per lesion and for the whole mask."""
    mask = lesions.mask
    vv = mask.voxel_volume_mm3
    ids = [les.lesion_id for les in lesions.lesions]
    per_lesion = lesion_volumes(full, lesions.label_image, ids,
                                convention, mask.spacing_mm, vv, lesions.connectivity or 26)
    new = tuple(replace(les, compartment_volumes_mm3=per_lesion[les.lesion_id])
                for les in lesions.lesions)
    return replace(lesions, lesions=new, compartments=convention.name,
                   compartment_volumes_mm3=mask_volumes(full, convention, vv))
