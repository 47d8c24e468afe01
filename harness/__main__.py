"""`python -m harness ...`: see harness/cli/ (the commands) and harness.cli.main (the dispatch)."""

import sys

if __name__ == "__main__":
    try:
        from harness.cli.main import main
    except KeyboardInterrupt:  # Ctrl-C while the CLI's imports load: no traceback, like Ctrl-C later
        sys.exit(130)
    sys.exit(main())
