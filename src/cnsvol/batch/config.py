"""What determines every subject's result in a run: the criteria, how masks are measured, and
whether QC pictures are drawn."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..pipeline import MeasureOptions
from ..response.criteria import Criteria, get_criteria
from .limits import RunLimits

__all__ = ["RunConfig"]


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a subject's result (and nothing that does not).

    ``criteria`` is a preset name (``"tbcrc022"``), a TOML criteria file or a :class:`Criteria`;
    it is a :class:`Criteria` once the config is made, and ``criteria_file`` the file it was
    read from, if any (hashed into provenance). ``limits``: the run's time limits
    (:class:`~cnsvol.batch.limits.RunLimits`), recorded in provenance but not part of the
    fingerprint: a result computed within a limit does not depend on it.
    """

    criteria: Criteria = field(default_factory=lambda: get_criteria("lin2009"))
    """A :class:`Criteria` (given as one, or as a preset name or TOML file: converted)."""
    options: MeasureOptions = field(default_factory=MeasureOptions)
    qc: bool = True
    criteria_file: Path | None = None
    limits: RunLimits = field(default_factory=RunLimits)

    def __post_init__(self) -> None:
        spec: Any = self.criteria
        if not isinstance(spec, Criteria):
            if str(spec).lower().endswith(".toml") and self.criteria_file is None:
                object.__setattr__(self, "criteria_file", Path(spec))
            object.__setattr__(self, "criteria", get_criteria(spec))
        if not isinstance(self.options, MeasureOptions):
            raise TypeError(f"options must be a MeasureOptions, got {type(self.options).__name__}")
        if not isinstance(self.limits, RunLimits):
            raise TypeError(f"limits must be a RunLimits, got {type(self.limits).__name__}")

    def fingerprint(self) -> str:
        """A canonical text of everything that changes a subject's result (store keys)."""
        return json.dumps({"version": __version__, "criteria": self.criteria.to_dict(),
                           "options": self.options.to_dict(), "qc": self.qc},
                          sort_keys=True, allow_nan=False)

    def to_dict(self) -> dict[str, Any]:
        return {"criteria": self.criteria.name,
                "criteria_file": (None if self.criteria_file is None
                                  else str(Path(self.criteria_file).resolve())),
                "options": self.options.to_dict(), "qc": self.qc,
                "limits": self.limits.to_dict()}
