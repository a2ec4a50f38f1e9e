"""Running a long-lived role (an object with run() and a thread-safe stop()) until told to stop."""

import signal
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stopped_by_signals(role):
    """While inside, SIGTERM and SIGINT ask `role` to stop (it then finishes its work and returns
    from run()); the previous handlers come back afterwards."""
    previous = {signum: signal.signal(signum, lambda *_: role.stop()) for signum in STOP_SIGNALS}
    try:
        yield role
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
