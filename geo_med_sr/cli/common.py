"""How every command is parsed and runs (the shells layer): modes, one-line errors and warnings, signals.

:class:`CommandParser` is the parser of every subcommand; a command with two modes (``evaluate``
and ``evaluate --sharpen``) hands its arguments to the parser of the mode its flag names.
Every error the tool knows about is printed as one line ``geo-med-sr: error: <file>: <problem>``
and exits with status 2 (the same status argparse uses for bad options); see :func:`run_command`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from geo_med_sr.errors import GeoMedSRError

__all__ = ["EXIT_ERROR", "EXIT_FAILED", "CommandParser", "Terminated", "run_command"]

#: a known error, or bad options.
EXIT_ERROR = 2
#: ``batch``: some inputs failed (the others were done).
EXIT_FAILED = 1


class _ModeFlag(argparse.Action):
    """The flag of a mode, met by the default mode's parser (spelt short, e.g. ``--sharp``): switch to the mode."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string: Any = None) -> None:
        raise _SwitchMode(self.option_strings[0])


class _SwitchMode(Exception):
    """Raised by :class:`_ModeFlag` to hand the arguments to the mode's parser."""


class CommandParser(argparse.ArgumentParser):
    """A subcommand's parser; :meth:`add_mode` gives it a second mode chosen by a flag.

    The flag may stand anywhere among the command's arguments (``evaluate --sharpen IN`` or
    ``evaluate IN --method glp --sharpen``); the mode's parser then parses all of them, into a
    namespace whose flag attribute is True (False in the default mode). ``--help`` shows both modes.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.modes: dict[str, argparse.ArgumentParser] = {}

    def add_mode(self, flag: str, help: str, description: str) -> argparse.ArgumentParser:
        """A new parser for the mode of ``flag`` (``help``: the flag's help here), to add its arguments to."""
        mode = CommandParser(prog=f"{self.prog} {flag}", description=description)
        mode.add_argument(flag, action="store_true", required=True, help=argparse.SUPPRESS)
        self.add_argument(flag, action=_ModeFlag, nargs=0, default=False, help=help)
        self.modes[flag] = mode
        return mode

    def _mode(self, args: Sequence[str]) -> argparse.ArgumentParser | None:
        options = list(args)[: list(args).index("--")] if "--" in args else list(args)
        return next((mode for flag, mode in self.modes.items() if flag in options), None)

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> tuple[Any, list[str]]:
        """Parse ``args`` in the mode they name (the default one without a mode flag)."""
        args = sys.argv[1:] if args is None else list(args)
        mode = self._mode(args)
        if mode is None:
            try:
                return super().parse_known_args(args, namespace)
            except _SwitchMode as switch:  # the flag spelt short: the mode's parser knows it so too
                mode = self.modes[str(switch)]
        return mode.parse_args(args, namespace), []

    def error(self, message: str) -> NoReturn:
        """A bad option: one line ``geo-med-sr CMD: error: ...`` and exit 2 (``--help`` shows the usage)."""
        self.exit(EXIT_ERROR, f"{self.prog}: error: {_one_line(message)}\n")

    def format_help(self) -> str:
        """The default mode's help, then each other mode's."""
        modes = "".join(f"\n{mode.format_help()}" for mode in self.modes.values())
        return super().format_help() + modes


class Terminated(BaseException):
    """SIGTERM/SIGHUP arrived (what schedulers and ``kill`` send): unwinds like Ctrl-C, so that
    temporary outputs are removed on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signum)


def _install_signal_handlers() -> dict[int, Any]:
    """SIGTERM and SIGHUP raise :class:`Terminated` in the main thread; returns the previous handlers."""
    previous = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            previous[sig] = signal.signal(sig, _terminate)
    return previous


def _show_warning(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
    """Warnings as one line each on stderr (``geo-med-sr: warning: ...``), never with a source line."""
    text = " ".join(str(message).split())
    print(f"geo-med-sr: warning: {text}", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def run_command(run: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run one command's ``run(args)`` and return the exit status.

    Errors the tool knows (:class:`GeoMedSRError`), and file-system or memory errors from
    anywhere, print one line and return 2; Ctrl-C returns 130, SIGTERM/SIGHUP 128 + the signal
    number, both after removing temporary outputs. Warnings print as one line each.
    """
    previous = _install_signal_handlers()
    try:
        with warnings.catch_warnings():  # Python's filters stay; only the way warnings are shown changes
            warnings.showwarning = _show_warning
            status = run(args)
    except GeoMedSRError as exc:
        print(f"geo-med-sr: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:  # a file-system error the tool did not foresee: still one line naming the file
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"geo-med-sr: error: {where}{exc.strerror or _one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except MemoryError as exc:
        detail = f" ({_one_line(exc)})" if str(exc) else ""
        print(
            f"geo-med-sr: error: out of memory{detail}; use a smaller --scale, --patch-size or input",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("geo-med-sr: interrupted; no partial output was left", file=sys.stderr)
        return 130
    except Terminated as exc:
        name = signal.Signals(exc.signum).name
        print(f"geo-med-sr: stopped by {name}; no partial output was left", file=sys.stderr)
        return 128 + exc.signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status or 0
