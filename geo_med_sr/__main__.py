"""``python -m geo_med_sr`` runs the command-line interface."""

import sys

from .cli import main

sys.exit(main())
