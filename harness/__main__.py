"""`python -m harness ...`: see harness.cli."""

import sys

if __name__ == "__main__":
    try:
        from harness.cli import main
    except KeyboardInterrupt:  # Ctrl-C while the CLI's imports load: no traceback, like Ctrl-C later
        sys.exit(130)
    sys.exit(main())
