"""The ``geo-med-sr`` parser and entry point: a thin shell over the tools.

Each command is one module of this package with ``add_parser(subparsers)`` and ``run(args)``
(:data:`COMMANDS`); shared options are declared once in :mod:`geo_med_sr.cli.options`; errors,
warnings and signals are handled in :mod:`geo_med_sr.cli.common`. Every error the tool knows
about is printed as one line ``geo-med-sr: error: <file>: <problem>`` and exits with status 2
(the same status argparse uses for bad options).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from geo_med_sr import __version__
from geo_med_sr.cli import batch, demo, dicom, evaluate, info, sharpen, train, upscale
from geo_med_sr.cli.common import EXIT_ERROR, CommandParser, run_command

__all__ = ["COMMANDS", "build_parser", "main"]

#: command name -> its module, in the order of ``geo-med-sr --help``.
COMMANDS: dict[str, ModuleType] = {
    "upscale": upscale,
    "sharpen": sharpen,
    "batch": batch,
    "info": info,
    "evaluate": evaluate,
    "train": train,
    "demo": demo,
    "dicom-node": dicom,
}


def build_parser() -> argparse.ArgumentParser:
    """The ``geo-med-sr`` argument parser (imports no torch)."""
    parser = argparse.ArgumentParser(
        prog="geo-med-sr", description="Super-resolution for medical volumes and satellite imagery with exact geometry."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=CommandParser)
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geo-med-sr`` console script; returns the exit status.

    Errors the tool knows (:class:`~geo_med_sr.errors.GeoMedSRError`), and file-system or memory
    errors from anywhere, print one line and exit 2; Ctrl-C exits 130, SIGTERM/SIGHUP 128 + the
    signal number, both after removing temporary outputs. Warnings print as one line each.
    """
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help/--version (0) or a bad option (2, said in one line): returned like the rest
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    return run_command(COMMANDS[args.command].run, args)


if __name__ == "__main__":
    sys.exit(main())
