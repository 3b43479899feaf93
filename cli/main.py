"""``cnsvol``: the command-line front end. One module per command (:mod:`.volumes`,
:mod:`.compare`, :mod:`.track`, :mod:`.run`, :mod:`.report`, :mod:`.manifest`), each parsing its
arguments, calling the library and rendering the result (:mod:`.render`); this module assembles
them, prints, and turns errors into exit codes.

Exit codes:
    0  success (for ``run``: every subject succeeded)
    1  an input could not be processed (bad mask, manifest, PFS table, criteria file, a locked
       results folder, ...): the message on stderr names the file, the problem and the fix
    2  bad invocation (unknown option, missing argument): usage on stderr
    3  ``run`` finished but some subjects failed (listed on stderr, in subjects.csv and the report)
    130, 143  ``run`` stopped by SIGINT (Ctrl-C) or SIGTERM: the workers are stopped, what was
       kept is said in one line, and the same command goes on from there
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from cnsvol import __version__

from . import agree, compare, manifest, report, run, track, volumes
from .options import EXIT_INPUT_ERROR, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, UNITS

__all__ = ["EXIT_INPUT_ERROR", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "build_parser", "main"]

COMMANDS = (volumes, compare, track, run, agree, report, manifest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnsvol",
        description=(
            "Volumetric response assessment of brain (CNS) lesions on MRI segmentation masks. "
            "Reads NIfTI-1/2 (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd) and, "
            "with the dicom extra, DICOM SEG and RTSTRUCT (by content; or a folder holding one)."
        ),
        epilog=UNITS + "\n\nexit codes: 0 success, 1 an input could not be processed, "
        "2 bad invocation, 3 run finished with failed subjects.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cnsvol {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback when an error occurs"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS:
        p = module.add_parser(sub)
        # --debug also after the command (its default must not hide one given before it)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback when an error occurs")
    return parser


def _stopped(code: int, command_line: bool) -> int:
    """The exit code of a command stopped by a signal. As the ``cnsvol`` command (not called
    in-process with ``argv``), it leaves at once, its output flushed, without the
    interpreter's teardown: a library thread still starting in the run process (statistics and
    figure libraries load while workers compute) could otherwise abort the exit."""
    if command_line:
        import os

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (tests call this in-process)."""
    command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 0 for --help/--version and 2 for usage errors
        return int(exc.code or 0)
    args.argv = argv
    from cnsvol.batch.executors import DaskNotInstalled
    from cnsvol.batch.signals import RunInterrupted
    from cnsvol.errors import CnsvolError, describe_os_error

    try:
        out = args.func(args)
    except RunInterrupted as exc:
        print(f"cnsvol {args.command}: {exc}: {exc.kept or 'nothing was changed'}",
              file=sys.stderr)
        return _stopped(exc.exit_code, command_line)
    except KeyboardInterrupt:
        print(f"cnsvol {args.command}: interrupted by SIGINT: nothing was written",
              file=sys.stderr)
        return _stopped(130, command_line)
    except (CnsvolError, OSError, ValueError, DaskNotInstalled) as exc:
        if args.debug:
            traceback.print_exc()
        message = describe_os_error(exc) if isinstance(exc, OSError) and \
            not isinstance(exc, CnsvolError) else str(exc)
        print(f"cnsvol {args.command}: error: {message}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    code = EXIT_OK
    if isinstance(out, tuple):
        out, code = out
    try:
        print(out)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader (e.g. `| head`) closed the pipe: stop quietly
        _silence_stdout()
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush does not raise again
    (the recipe of the Python documentation on SIGPIPE)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (tests): nothing to do
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
