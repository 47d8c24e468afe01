"""`python -m harness.host [APP_DIR] --port 7071 ...`."""

import os
import sys

# gRPC's fork handlers (on by default) re-arm its threads in a forked child, which then poll file
# descriptors the child no longer has ("epoll_wait ... Bad file descriptor", SIGABRT). Nothing
# here uses gRPC in a forked child: every child execs at once. Set before gRPC is imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from .server import main  # noqa: E402

sys.exit(main())
