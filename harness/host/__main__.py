"""`python -m harness.host [APP_DIR] --port 7071 ...`."""

import sys

from .server import main

sys.exit(main())
