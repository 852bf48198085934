"""`python -m roughy.encoder`: the same as the `roughy-encode` console script."""

import sys

from roughy.encoder.cli import main

sys.exit(main())
