"""File names for per-subject outputs (QC pictures) that are safe for any subject id, and ids
as one line of text."""

from __future__ import annotations

import hashlib
import re

__all__ = ["one_line", "safe_filename"]

_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")

_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)),
                     *(f"LPT{i}" for i in range(10))}

_MAX_STEM = 80


def safe_filename(subject_id: str) -> str:
    """A file name stem for ``subject_id``: deterministic, portable and collision-free.

    Characters outside ``[A-Za-z0-9._-]`` become ``_``. The id is kept as is only when it is
    already safe *and* unambiguous: no lower-case letter (trial ids such as ``S01`` or
    ``EGF-0012`` stay readable, and two ids differing only in case, ``S01`` and ``s01``, cannot
    share a file on a case-insensitive file system as on macOS or Windows), no ``--``,
    not starting with ``.`` or ``-``, not ending with ``.``, not a Windows device name, and at
    most 80 characters. Otherwise ``--`` and the first 12 hex digits of the SHA-256 of the id
    (UTF-8) are appended to the (truncated) cleaned id. A kept name never contains ``--`` and a
    hashed one always does, so they cannot collide; two hashed names collide only if the hashes
    do.

    >>> safe_filename("S01")
    'S01'
    >>> safe_filename("S 01")
    'S_01--370a1bf4144c'
    """
    text = str(subject_id)
    stem = _SAFE_CHARS.sub("_", text)
    keep = (
        stem == text
        and stem != ""
        and not any("a" <= c <= "z" for c in stem)
        and "--" not in stem
        and not stem.startswith((".", "-"))
        and not stem.endswith(".")
        and stem.split(".")[0].upper() not in _WINDOWS_RESERVED
        and len(stem) <= _MAX_STEM
    )
    if keep:
        return stem
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    stem = stem[:_MAX_STEM]
    if stem.startswith((".", "-")) or not stem:
        stem = "_" + stem
    return f"{stem}--{digest}"


def one_line(text: str) -> str:
    """``text`` on one line: line breaks, tabs and other control characters written as
    escapes (``\\n``, ``\\t``, ``\\x1b``) and a backslash doubled, so that an id can never
    forge a line (or a column) of a log or a picture's caption."""
    out = []
    for ch in str(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch in "\n\r\t" or ord(ch) < 32 or ord(ch) == 127:
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, f"\\x{ord(ch):02x}"))
        else:
            out.append(ch)
    return "".join(out)
