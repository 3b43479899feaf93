"""Shared fixtures: the real-data folder, and writers of synthetic mask files (tests/helpers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import write_nifti, write_sitk  # noqa: F401  (re-exported for the tests)

_ENV = "CNSVOL_REALDATA"


def _find_realdata() -> tuple[Path | None, str]:
    """The real-data folder, and where it was looked for (for the skip reason)."""
    env = os.environ.get(_ENV)
    if env:
        path = Path(env).expanduser()
        return (path if path.is_dir() else None), f"${_ENV}={env}"
    here = Path(__file__).resolve().parent
    tried = []
    for parent in (here, *here.parents):
        candidate = parent / "shared" / "realdata"
        tried.append(str(candidate))
        if candidate.is_dir():
            return candidate, str(candidate)
    return None, " or ".join(tried[:3]) + " ..."


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Path of the real-mask folder (``../shared/realdata`` beside the checkout, or $CNSVOL_REALDATA)."""
    path, where = _find_realdata()
    if path is None:
        pytest.skip(
            f"real-data folder not found (looked for {where}); set {_ENV} to the folder that "
            "holds pyradiomics/, ibsi/, deepmedic_brats2015/, nibabel/ and open_ms_data/"
        )
    return path
