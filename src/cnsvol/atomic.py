"""Files that appear whole or not at all: write to a temporary file in the same folder, flush
(and fsync), then rename over the target, so that a reader (or a resumed run) never sees half a
file. A killed process leaves only a hidden ``.<name>.*.tmp`` file beside the target."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_writer", "remove_partial_writes"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def _atomic_file(path: str | Path, mode: str, durable: bool = True, **kwargs: Any) -> Iterator[Any]:
    """A file object whose contents appear at ``path`` whole, or not at all (an exception, or
    a killed process, leaves only a hidden ``.tmp`` file beside it), with the permissions a
    plain ``open`` would give (0666 less the umask; ``mkstemp`` alone gives owner-only)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _naming(exc, path.parent) from None
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _naming(exc, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` with the file it concerns (a failed write, e.g. a full disk, names none)."""
    if exc.filename is not None:
        return exc
    return type(exc)(exc.errno, exc.strerror or str(exc), str(path))


def atomic_write_bytes(path: str | Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`_atomic_file`).

    ``durable=False`` skips the ``fsync``: the file is still never seen half-written by a
    reader or after a killed process, but a power cut may leave it empty; for files whose
    reader checks them (the stored per-subject results) and recomputes what fails.
    """
    with _atomic_file(path, "wb", durable) as fh:
        fh.write(data)


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[TextIO]:
    """A UTF-8 text file to write in pieces, appearing at ``path`` whole or not at all."""
    with _atomic_file(path, "w", encoding="utf-8", newline="") as fh:
        yield fh


def atomic_write_text(path: str | Path, text: str, *, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


def remove_partial_writes(folder: Path) -> None:
    """Delete the temporary files that killed atomic writes left in ``folder``."""
    if folder.is_dir():
        for entry in folder.glob(".*.tmp"):
            entry.unlink(missing_ok=True)
