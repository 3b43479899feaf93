"""Label selection: explicit label values and named presets for common label conventions.

A preset names the label values that together form one region. ``None`` means "every non-zero
label" (the default).

BraTS glioma (2017-2021 challenges): 1 = necrotic / non-enhancing tumour core, 2 = peritumoural
oedema, 4 = enhancing tumour. Regions: enhancing tumour (ET) = {4}, tumour core (TC) = {1, 4},
whole tumour (WT) = {1, 2, 4}.

BraTS-METS (2023 brain-metastasis challenge): 1 = non-enhancing tumour core, 2 = surrounding
FLAIR hyperintensity, 3 = enhancing tumour. Regions: ET = {3}, TC = {1, 3}, WT = {1, 2, 3}.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["LABEL_PRESETS", "parse_labels"]

LABEL_PRESETS: dict[str, tuple[int, ...] | None] = {
    "all": None,
    "brats-et": (4,),
    "brats-tc": (1, 4),
    "brats-wt": (1, 2, 4),
    "brats-mets-et": (3,),
    "brats-mets-tc": (1, 3),
    "brats-mets-wt": (1, 2, 3),
}


def parse_labels(spec: str | Iterable[int] | None) -> tuple[int, ...] | None:
    """Turn a label specification into a sorted tuple of label values (``None`` = all non-zero).

    ``spec`` is ``None``, a preset name from :data:`LABEL_PRESETS`, a comma-separated string of
    positive integers (``"1,3"``), or an iterable of positive integers.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in LABEL_PRESETS:
            return LABEL_PRESETS[text]
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            names = ", ".join(LABEL_PRESETS)
            raise ValueError(
                f"label selection {spec!r} is neither a preset ({names}) nor a comma-separated "
                "list of label values such as '1,3'"
            ) from None
    else:
        values = [int(v) for v in spec]
    if not values:
        raise ValueError(f"label selection {spec!r} names no label value")
    bad = [v for v in values if v <= 0]
    if bad:
        raise ValueError(
            f"label selection {spec!r} contains {bad}: label values must be positive integers "
            "(0 is background)"
        )
    return tuple(sorted(set(values)))
