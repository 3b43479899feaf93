"""The output tables of a run: their declared schema, DataFrames built from typed results, CSV
both ways, and a results folder read back as typed values.

* :mod:`.schema`: :data:`SCHEMAS`, the four tables' columns (dtype, unit, meaning);
* :mod:`.frames`: :func:`build_frames` from :class:`~cnsvol.response.SubjectResult` values;
* :mod:`.csvtable`: writing and reading a table's CSV by its schema;
* :mod:`.folder`: :func:`read_results`, a results folder as :class:`RunResults`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover  (names for type checkers; loaded lazily below)
    from .csvtable import read_table, render_rows, write_table  # noqa: F401
    from .folder import RunResults, read_results  # noqa: F401
    from .frames import build_frames, subject_rows  # noqa: F401
    from .schema import SCHEMAS, TableSchema  # noqa: F401

_EXPORTS = {
    "RunResults": "folder",
    "SCHEMAS": "schema",
    "TableSchema": "schema",
    "build_frames": "frames",
    "read_results": "folder",
    "read_table": "csvtable",
    "render_rows": "csvtable",
    "subject_rows": "frames",
    "write_table": "csvtable",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
