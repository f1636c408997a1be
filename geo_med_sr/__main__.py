"""``python -m geo_med_sr`` runs the command-line interface."""

import sys

from geo_med_sr.cli.main import main

sys.exit(main())
