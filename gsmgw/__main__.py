"""``python -m gsmgw``."""

import sys

from gsmgw.cli import main

sys.exit(main())
