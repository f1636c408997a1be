"""The DICOM network side of the command line: the ``dicom-node`` subcommand and the PACS options of ``upscale``.

:mod:`geo_med_sr.cli.main` registers ``dicom-node`` (:func:`add_parser`, :func:`run`);
:mod:`geo_med_sr.cli.upscale` calls :func:`add_pacs_options`, :func:`upscale_input`,
:func:`check_upscale_push` and :func:`push_upscale_result` around ``super_resolve``; nothing here
imports pynetdicom, dicomweb-client or torch before a command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator

from geo_med_sr import options_check as check
from geo_med_sr.cli.options import typed
from geo_med_sr.pacs.fetch import DEFAULT_AE_TITLE, is_dicomweb

__all__ = [
    "add_pacs_options",
    "add_parser",
    "check_upscale_push",
    "push_upscale_result",
    "run",
    "upscale_input",
]


def add_pacs_options(p: argparse.ArgumentParser) -> None:
    """``upscale``'s PACS options: ``--from`` (C-GET), ``--send`` (C-STORE), ``--stow`` (STOW-RS), ``--ae-title``."""
    g = p.add_argument_group(
        "PACS",
        "INPUT may also be dicomweb://HOST:PORT/PATH/studies/S/series/U (WADO-RS; dicomweb+https:// for https); "
        "a fetched series goes to a temporary folder that is removed afterwards",
    )
    g.add_argument(
        "--from",
        dest="from_peer",
        metavar="AE@HOST:PORT",
        default=None,
        help="retrieve --series UID from this PACS with C-GET instead of reading INPUT (the PACS must know --ae-title)",
    )
    g.add_argument("--send", metavar="AE@HOST:PORT", default=None, help="C-STORE the written DICOM series there")
    g.add_argument(
        "--stow", metavar="URL", default=None, help="STOW-RS the written DICOM series to this DICOMweb root URL"
    )
    g.add_argument("--ae-title", default=DEFAULT_AE_TITLE, help=f"our calling AE title (default {DEFAULT_AE_TITLE})")


def uses_pacs(args: argparse.Namespace) -> bool:
    """Whether an ``upscale`` talks to a PACS: ``--from``, a ``dicomweb://`` INPUT, ``--send`` or ``--stow``
    (or no INPUT at all, which the PACS input refuses in one line). A file-to-file run never enters ``pacs/``."""
    return bool(args.input is None or args.from_peer or is_dicomweb(args.input) or args.send or args.stow)


@contextlib.contextmanager
def upscale_input(args: argparse.Namespace) -> Iterator[str]:
    """The input path for ``super_resolve``: ``args.input``, or a fetched temporary folder (removed afterwards)."""
    from geo_med_sr.pacs.fetch import fetched_input

    with fetched_input(args.input, from_peer=args.from_peer, series=args.series, ae_title=args.ae_title) as path:
        yield path


def check_upscale_push(args: argparse.Namespace) -> None:
    """Refuse ``--send``/``--stow`` before any work when the output is not a DICOM series."""
    from geo_med_sr.pacs.fetch import check_push

    check_push(args.output, send=args.send, stow=args.stow, ae_title=args.ae_title)


def push_upscale_result(args: argparse.Namespace, output: object) -> None:
    """``--send``/``--stow`` the written series; one line per destination unless ``--quiet``."""
    from geo_med_sr.pacs.fetch import push_series

    for line in push_series(output, send=args.send, stow=args.stow, ae_title=args.ae_title):
        if not args.quiet:
            print(line)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``dicom-node`` on the subcommand parser ``sub``."""
    p = sub.add_parser(
        "dicom-node",
        help="run a DICOM node: receive series from a PACS, super-resolve them by rule, forward the results",
        description="A C-STORE SCP (MR/CT Image Storage, Verification). Every instance is on disk in the spool before "
        "it is acknowledged. A series is complete after --idle seconds without a new instance (or when the rule's "
        "expected count, ImagesInAcquisition or NumberOfSlices is reached); it is then super-resolved by the first "
        "matching rule into a new series of the same study and C-STOREd to the rule's forward destination or "
        "--forward. Failures go to SPOOL/failed/<uid>/error.txt; a restart resumes what the spool holds. Point a "
        "PACS at it by adding the node (AE title, host, port) to the PACS's DICOM modalities. Ctrl-C stops it.",
    )
    p.add_argument("--ae-title", required=True, help="the node's AE title (what senders call, and its calling title)")
    p.add_argument("--port", type=typed(check.PORT), required=True, help="TCP port to listen on")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument(
        "--forward", metavar="AE@HOST:PORT", default=None, help="where results go (rules may override: forward:)"
    )
    p.add_argument(
        "--rules",
        default=None,
        help="rules YAML (see configs/dicom_node/rules.example.yaml); default: every series, scale auto",
    )
    p.add_argument("--spool", default="geo-med-sr-spool", help="spool folder (default ./geo-med-sr-spool)")
    p.add_argument(
        "--idle",
        type=typed(check.NODE_SECONDS),
        default=10.0,
        help="seconds without a new instance that end a series (10)",
    )
    p.add_argument(
        "--return-port", type=typed(check.PORT), default=None, help="port of the sender for rules with forward: sender"
    )
    p.add_argument(
        "--retry", type=typed(check.NODE_SECONDS), default=60.0, help="seconds between retries of a failed forward (60)"
    )
    p.add_argument("--keep", action="store_true", help="keep the received and the written series of done series")
    p.add_argument("--verbose", action="store_true", help="log pynetdicom's own messages too")


def run(args: argparse.Namespace) -> int:
    """Run the node until Ctrl-C (exit 0); SIGTERM unwinds the same way (the caller's exit status)."""
    from geo_med_sr.pacs.node import DicomNode
    from geo_med_sr.pacs.rules import load_rules

    if not 0 < args.port < 65536:
        from geo_med_sr.errors import ConfigError

        raise ConfigError(f"--port {args.port}: expected 1-65535")
    rules = load_rules(args.rules) if args.rules else None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("pynetdicom").setLevel(logging.INFO if args.verbose else logging.WARNING)
    node = DicomNode(
        args.spool,
        rules,
        ae_title=args.ae_title,
        forward=args.forward,
        return_port=args.return_port,
        idle=args.idle,
        retry=args.retry,
        keep=args.keep,
    )
    try:
        node.run(args.host, args.port)
    except KeyboardInterrupt:
        logging.getLogger("geo_med_sr.pacs.node").info("interrupted (Ctrl-C)")
    return 0
