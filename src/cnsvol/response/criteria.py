"""Response criteria as data: the published presets (TOML files in ``presets/``, each citing
its source) and user-defined TOML files, both read by one validating loader.

All thresholds are inclusive (">= 50% reduction" means a change of exactly -50.0% qualifies).
Percent change is ``(follow-up - reference) / reference * 100``.

Presets (the trials' own definitions, translated to summed lesion volume; every value is
commented with its source in the preset's file):

``lin2009``
    Lin NU et al., Clin Cancer Res 2009;15(4):1452-9 (EGF105084). CNS objective response:
    >=50% volumetric reduction of CNS lesions vs baseline in the absence of new lesions,
    increasing steroid use, progressive neurologic signs and symptoms, or progressive extra-CNS
    disease. Progression: >=40% volumetric increase from nadir, a new lesion, increasing
    steroid requirement, neurologic or extra-CNS progression. Measurable lesion: longest
    diameter >=10 mm.

``tbcrc022``
    Freedman RA et al., J Clin Oncol 2016;34:945-52 and 2019;37:1081-9 (protocol). Response:
    >=50% reduction in the volumetric sum of target (>=10 mm) lesions vs baseline, no new lesion
    (>=6 mm), no steroid escalation, no neurologic or non-CNS progression. Progression: >=40%
    increase over the smallest sum on study, or a new lesion >=6 mm.

``rano-bm-vol``
    Lin NU et al., Lancet Oncol 2015;16(6):e270-8, the diameter thresholds as sphere volumes
    (30% decrease -> 65%, 20% increase -> 73%); up to 5 targets >=10 mm; PR/CR sustained >=28
    days; PD also needs one lesion growing >=5 mm; new lesions <5 mm equivocal until confirmed;
    CR off corticosteroids; neurologic worsening is progression; extracranial disease ignored.
    Measurable: >= 10 mm longest, on >= 2 axial slices, perpendicular >= 5 mm.

``rano2-vol``
    Wen PY et al., J Clin Oncol 2023;41(33):5187-99 (RANO 2.0), volumetric: PR >= 65% decrease,
    PD >= 40% increase vs nadir; CR/PR confirmed >= 28 days later, CR off steroids; measurable
    10 x 10 mm on >= 2 slices; a PD within 12 weeks after radiotherapy needs the next scan to
    confirm it; the response measure is the enhancing compartment.

Under every preset: non-target lesions that progress unequivocally are PD, new lesions below the
preset's floor are equivocal until a later scan confirms them, and timepoints after the first PD
are post-progression (:mod:`cnsvol.response.series`). ``docs/criteria.md`` lists every rule with
its source, its field and its test.

The >=20% volumetric reduction flag (``responder_reduction_pct``) is reported under every
preset.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import CriteriaError

__all__ = [
    "PRESETS",
    "Criteria",
    "ProgressionReference",
    "TargetLesions",
    "get_criteria",
    "load_criteria_file",
    "with_overrides",
]


class ProgressionReference(StrEnum):
    """The target sum that progression is measured against."""

    NADIR = "nadir"  # the smallest sum so far, baseline included
    BASELINE = "baseline"


class TargetLesions(StrEnum):
    """Which baseline lesions the target sum holds."""

    MEASURABLE = "measurable"
    ALL = "all"


@dataclass(frozen=True)
class Criteria:
    """One set of volumetric response rules. Field meanings (all thresholds inclusive):

    * ``response_decrease_pct``: PR when the target sum decreased by at least this much vs
      baseline; CR when every target lesion is gone.
    * ``progression_increase_pct``: PD when the target sum increased by at least this much vs
      ``progression_reference`` (``"nadir"``: the smallest sum so far, baseline included;
      ``"baseline"``).
    * ``progression_min_lesion_growth_mm``: if set, volumetric PD also needs one lesion whose
      sphere-equivalent diameter grew by at least this many mm over its own smallest value.
    * ``measurable_min_diameter_mm``, ``measurable_min_perpendicular_mm``,
      ``measurable_min_slices``: a baseline lesion is measurable (a target candidate) when its
      axial longest diameter is at least ``measurable_min_diameter_mm``, the diameter
      perpendicular to it on the same slice at least ``measurable_min_perpendicular_mm``, and
      it lies on at least ``measurable_min_slices`` axial slices.
    * ``max_target_lesions``: at most this many targets, the largest first (``None``: all).
    * ``target_lesions``: ``"measurable"`` (sum over measurable baseline lesions) or ``"all"``.
    * ``new_lesion_is_progression``: an unequivocal new lesion is PD.
    * ``new_lesion_min_diameter_mm``: the new-lesion floor: new lesions whose longest diameter is
      shorter are equivocal (0: none are) until a later scan confirms them.
    * ``nontarget_progression_growth_mm``, ``nontarget_progression_small_below_mm``,
      ``nontarget_progression_small_reach_mm``: unequivocal progression of a non-target lesion
      (PD): one whose smallest longest diameter so far is below ``small_below_mm`` reaches
      ``small_reach_mm``, a larger one grows by ``growth_mm`` (``None``: no non-target rule).
    * ``radiotherapy_confirmation_days``: a PD within this many days after the end of
      radiotherapy counts only when the next scan confirms it (``None``: no such rule).
    * ``response_compartments``: with a compartment convention, the compartments whose
      lesions are measured (e.g. ``["enhancing"]``; ``None``: the labels selected).
    * ``confirmation_min_days``: a PR/CR counts for the best overall response only when a later
      scan at least this many days after it confirms it (``None``: no confirmation needed).
    * ``cr_requires_off_steroids``: CR also needs a steroid dose of 0 (when recorded).
    * ``steroid_increase_blocks_response`` / ``steroid_increase_is_progression``,
      ``neuro_worse_blocks_response`` / ``neuro_worse_is_progression``,
      ``extracns_blocks_response`` / ``extracns_is_progression``: how the clinical modifiers,
      when recorded, enter the category.
    * ``responder_reduction_pct``: the exploratory responder flag (>= 20% reduction vs
      baseline, the lapatinib trials' threshold), reported under every criteria set.
    """

    name: str
    title: str
    source: str
    response_decrease_pct: float
    progression_increase_pct: float
    progression_reference: ProgressionReference
    progression_min_lesion_growth_mm: float | None
    measurable_min_diameter_mm: float
    max_target_lesions: int | None
    target_lesions: TargetLesions
    new_lesion_is_progression: bool
    new_lesion_min_diameter_mm: float
    confirmation_min_days: int | None
    cr_requires_off_steroids: bool
    steroid_increase_blocks_response: bool
    steroid_increase_is_progression: bool
    neuro_worse_blocks_response: bool
    neuro_worse_is_progression: bool
    extracns_blocks_response: bool
    extracns_is_progression: bool
    responder_reduction_pct: float = 20.0
    measurable_min_perpendicular_mm: float = 0.0
    measurable_min_slices: int = 1
    nontarget_progression_growth_mm: float | None = 5.0
    nontarget_progression_small_below_mm: float = 6.0
    nontarget_progression_small_reach_mm: float = 10.0
    radiotherapy_confirmation_days: int | None = None
    response_compartments: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _validate(self)
        object.__setattr__(self, "progression_reference",
                           ProgressionReference(self.progression_reference))
        object.__setattr__(self, "target_lesions", TargetLesions(self.target_lesions))
        if self.response_compartments is not None:
            object.__setattr__(self, "response_compartments",
                               tuple(str(c) for c in self.response_compartments))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "criteria") -> Criteria:
        """Criteria from a dict of every field (as :meth:`to_dict` gives, or a TOML table),
        checked like a criteria file: unknown, missing and mistyped fields are reported
        together, naming ``where``."""
        return _from_document(dict(data), where)


_OPTIONAL = {"responder_reduction_pct", "title", "source", "measurable_min_perpendicular_mm",
             "measurable_min_slices", "nontarget_progression_growth_mm",
             "nontarget_progression_small_below_mm", "nontarget_progression_small_reach_mm",
             "radiotherapy_confirmation_days", "response_compartments"}
_NULLABLE = {"progression_min_lesion_growth_mm", "max_target_lesions", "confirmation_min_days",
             "nontarget_progression_growth_mm", "radiotherapy_confirmation_days",
             "response_compartments"}
_COMPARTMENT_NAMES = ("enhancing", "nonenhancing", "edema", "cavity")


_RANGES: tuple[tuple[tuple[str, ...], Any, str], ...] = (
    (("response_decrease_pct",), lambda v: 0 < v <= 100,
     "response_decrease_pct must be in (0, 100], got {response_decrease_pct}"),
    (("progression_increase_pct",), lambda v: v > 0,
     "progression_increase_pct must be > 0, got {progression_increase_pct}"),
    (("responder_reduction_pct",), lambda v: 0 < v <= 100,
     "responder_reduction_pct must be in (0, 100], got {responder_reduction_pct}"),
    (("progression_reference",), lambda v: v in ("nadir", "baseline"),
     "progression_reference must be 'nadir' or 'baseline', got {progression_reference!r}"),
    (("target_lesions",), lambda v: v in ("measurable", "all"),
     "target_lesions must be 'measurable' or 'all', got {target_lesions!r}"),
    (("measurable_min_diameter_mm", "new_lesion_min_diameter_mm"),
     lambda a, b: a >= 0 and b >= 0, "diameters must be >= 0 mm"),
    (("max_target_lesions",), lambda v: v is None or v >= 1,
     "max_target_lesions must be >= 1, got {max_target_lesions}"),
    (("confirmation_min_days",), lambda v: v is None or v >= 0,
     "confirmation_min_days must be >= 0, got {confirmation_min_days}"),
    (("progression_min_lesion_growth_mm",), lambda v: v is None or v >= 0,
     "progression_min_lesion_growth_mm must be >= 0"),
    (("measurable_min_perpendicular_mm",), lambda v: v >= 0,
     "measurable_min_perpendicular_mm must be >= 0, got {measurable_min_perpendicular_mm}"),
    (("measurable_min_slices",), lambda v: v >= 1,
     "measurable_min_slices must be >= 1, got {measurable_min_slices}"),
    (("nontarget_progression_growth_mm",), lambda v: v is None or v > 0,
     "nontarget_progression_growth_mm must be > 0, got {nontarget_progression_growth_mm}"),
    (("nontarget_progression_small_below_mm", "nontarget_progression_small_reach_mm"),
     lambda a, b: 0 <= a <= b,
     "nontarget_progression_small_below_mm ({nontarget_progression_small_below_mm}) must be "
     ">= 0 and <= nontarget_progression_small_reach_mm ({nontarget_progression_small_reach_mm})"),
    (("radiotherapy_confirmation_days",), lambda v: v is None or v >= 0,
     "radiotherapy_confirmation_days must be >= 0, got {radiotherapy_confirmation_days}"),
    (("response_compartments",),
     lambda v: v is None or (len(v) > 0 and all(c in _COMPARTMENT_NAMES for c in v)),
     "response_compartments must list compartments among "
     f"{', '.join(_COMPARTMENT_NAMES)}, got {{response_compartments}}"),
)


def _range_problems(values: dict[str, Any]) -> list[str]:
    """The range checks of the fields given (a field missing from ``values`` is skipped)."""
    out = []
    for names, ok, message in _RANGES:
        if all(n in values for n in names) and not ok(*(values[n] for n in names)):
            out.append(message.format(**{n: values[n] for n in names}))
    return out


def _validate(c: Criteria) -> None:
    problems = _range_problems({f.name: getattr(c, f.name) for f in fields(c)})
    if problems:
        raise CriteriaError(f"criteria {c.name!r}: " + "; ".join(problems))


def get_criteria(spec: str | Path | Criteria) -> Criteria:
    """A preset by name (``lin2009``, ``tbcrc022``, ``rano-bm-vol``, ``rano2-vol``) or a TOML
    criteria file."""
    if isinstance(spec, Criteria):
        return spec
    text = str(spec)
    if text in PRESETS:
        return PRESETS[text]
    if text.lower().endswith(".toml"):
        return load_criteria_file(text)
    raise CriteriaError(
        f"unknown criteria {text!r}: use one of {', '.join(PRESETS)} or a .toml criteria file"
    )


def load_criteria_file(path: str | Path) -> Criteria:
    """Load user-defined criteria from TOML.

    The file holds the fields of :class:`Criteria` at top level (or in a ``[criteria]`` table).
    ``extends = "<preset>"`` starts from a preset and overrides only the fields given; without
    it every field without a default must be present. ``name`` defaults to the file's stem.
    TOML has no null: write ``"none"`` for the optional limits (e.g.
    ``max_target_lesions = "none"``).
    Unknown or missing fields and wrong types are reported all at once.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise CriteriaError(f"{path}: criteria file not found. Fix: check the path, or give a "
                            f"preset name ({', '.join(PRESETS)})") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CriteriaError(f"{path}: cannot parse TOML ({exc}). Fix the file's syntax.") from None
    if isinstance(doc.get("criteria"), dict):
        doc = doc["criteria"]
    doc = dict(doc)
    extends = doc.pop("extends", None)
    doc.setdefault("name", path.stem)
    if extends is not None:
        if extends not in PRESETS:
            raise CriteriaError(
                f"{path}: extends = {extends!r} is not a preset ({', '.join(PRESETS)})"
            )
        base: dict[str, Any] = PRESETS[extends].to_dict()
        base.update({"title": f"{doc['name']} (based on {extends})"})
        base.update(doc)
        doc = base
    doc.setdefault("source", f"user criteria file {path.name}")
    return _from_document(doc, str(path))


def _from_document(doc: dict[str, Any], where: str) -> Criteria:
    """Validate a criteria document and build it; every problem (unknown, missing and mistyped
    fields, values out of range) is reported at once."""
    known = [f.name for f in fields(Criteria)]
    problems = []
    unknown = sorted(set(doc) - set(known))
    if unknown:
        problems.append(f"unknown field(s) {', '.join(unknown)}. Known fields: {', '.join(known)}")
    missing = [n for n in known if n not in doc and n not in _OPTIONAL]
    if missing:
        problems.append(
            f"missing field(s) {', '.join(missing)}. Give them, or start from a preset "
            f"with extends = \"lin2009\" (or {', '.join(_PRESET_NAMES[1:])})"
        )
    doc = {n: v for n, v in doc.items() if n in known}
    if "name" in doc:
        doc.setdefault("title", str(doc["name"]))
    doc.setdefault("source", "")
    typed = {}
    for name, value in doc.items():
        error = _type_error(name, value)
        if error:
            problems.append(error)
        else:  # TOML has no null: "none" (any case) stands for it
            typed[name] = None if name in _NULLABLE and isinstance(value, str) else value
    problems += _range_problems(typed)
    if problems:
        raise CriteriaError(f"{where}: " + "; ".join(problems))
    return Criteria(**typed)


_BOOL_FIELDS = {f.name for f in fields(Criteria) if f.type == "bool"}
_INT_FIELDS = {"max_target_lesions", "confirmation_min_days", "measurable_min_slices",
               "radiotherapy_confirmation_days"}
_STR_FIELDS = {"name", "title", "source", "progression_reference", "target_lesions"}


def _type_error(name: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return None if name in _NULLABLE else f"{name} cannot be empty"
    if name == "response_compartments":
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        return None if ok else f"{name} must be a list of compartment names, got {value!r}"
    if name in _BOOL_FIELDS:
        return None if isinstance(value, bool) else f"{name} must be true or false, got {value!r}"
    if name in _STR_FIELDS:
        return None if isinstance(value, str) else f"{name} must be a string, got {value!r}"
    none = ' (or "none")' if name in _NULLABLE else ""
    if name in _INT_FIELDS:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"{name} must be a whole number{none}, got {value!r}"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return None if ok else f"{name} must be a number{none}, got {value!r}"


def with_overrides(criteria: Criteria, **changes: Any) -> Criteria:
    """A copy of ``criteria`` with some fields changed (validated)."""
    return replace(criteria, **changes)


_PRESET_NAMES = ("lin2009", "tbcrc022", "rano-bm-vol", "rano2-vol")


def _load_preset(name: str) -> Criteria:
    text = resources.files(__package__).joinpath("presets", f"{name}.toml").read_text("utf-8")
    return _from_document(tomllib.loads(text), f"preset {name}")


PRESETS: dict[str, Criteria] = {name: _load_preset(name) for name in _PRESET_NAMES}
"""The published presets by name, read from the package's ``presets/*.toml`` files."""
