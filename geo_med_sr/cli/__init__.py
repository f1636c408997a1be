"""The ``geo-med-sr`` command line: one module per command group; shells over the tools.

``main`` is the console script's entry point (``pyproject.toml``); ``build_parser`` builds the
whole parser without importing torch.
"""

from __future__ import annotations

from geo_med_sr.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
