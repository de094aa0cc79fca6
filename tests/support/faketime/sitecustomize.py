"""Read at start-up by every Python process of ``make test``'s faketime run (on PYTHONPATH).

libfaketime 0.9.10 (Debian 12) fakes the wall clock well, but not both kinds of waiting:

- with ``DONT_FAKE_MONOTONIC=1`` (monotonic time stays real) ``clock_nanosleep`` on
  ``CLOCK_MONOTONIC`` with ``TIMER_ABSTIME`` fails with ``EINVAL``, and that is how CPython's
  ``time.sleep`` waits, so every sleep raises ``OSError: [Errno 22]``;
- without it, a lock's timed wait (``sem_clockwait`` on the faked monotonic clock) never
  returns, so every ``Event.wait(timeout)`` and ``queue.get(timeout=...)`` hangs.

The run keeps monotonic time real, and ``time.sleep`` waits on a lock instead, which works
there. Outside that run this file is not on the path and changes nothing.
"""

import os
import threading
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    if seconds == 0:
        os.sched_yield()  # what sleep(0) is for: let another thread run
        return
    threading.Event().wait(seconds)


time.sleep = _sleep
