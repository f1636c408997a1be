"""Options shared by the subcommands (the shells layer): how progress is shown."""

from __future__ import annotations

import argparse

__all__ = ["add_progress_options", "progress_mode"]


def add_progress_options(p: argparse.ArgumentParser, quiet_help: str = "no progress bar or summary") -> None:
    """``--quiet`` and ``--progress`` on ``p`` (mutually exclusive).

    ``--progress`` keeps the progress bars on stderr when it is not a terminal (a pipe, a log file, the QGIS
    plugin, which reads the ``NN%`` of each bar to drive its own progress bar).
    """
    group = p.add_mutually_exclusive_group()
    group.add_argument("--quiet", action="store_true", help=quiet_help)
    group.add_argument(
        "--progress",
        action="store_true",
        help="show progress bars on stderr even when it is not a terminal (default: only on a terminal)",
    )


def progress_mode(args: argparse.Namespace) -> bool | None:
    """``progress=`` for the library calls: False (quiet), True (forced) or None (on a terminal only)."""
    if getattr(args, "quiet", False):
        return False
    return True if getattr(args, "progress", False) else None
