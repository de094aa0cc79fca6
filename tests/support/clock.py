"""The suite's clock when it runs under ``faketime`` (``make test``'s third run).

libfaketime works by ``LD_PRELOAD``, which every child process inherits. Our own code
(the app, the worker, the simulators) should live in the faked time; the third-party
daemons the tests start (Mosquitto, PostgreSQL, Chromium) should not: Mosquitto's sockets
fail under the preload (``OSError: [Errno 22]``) and Chromium hangs. They get
:func:`daemon_environment`; the browser's pages get the faked time through Playwright's
clock instead (:func:`faked_now`).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

# libfaketime's own variables (its README): the preload, the time spec and its options.
FAKETIME_VARIABLES = ("FAKETIME", "FAKETIME_", "DONT_FAKE_MONOTONIC", "FAKE_")


def under_faketime() -> bool:
    """Whether this process runs with libfaketime preloaded."""
    return "faketime" in os.environ.get("LD_PRELOAD", "")


def daemon_environment() -> dict[str, str]:
    """This process's environment without libfaketime, for the daemons the tests start."""
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith(FAKETIME_VARIABLES)
    }
    preload = [path for path in environment.pop("LD_PRELOAD", "").split() if "faketime" not in path]
    if preload:
        environment["LD_PRELOAD"] = " ".join(preload)
    return environment


def faked_now() -> datetime | None:
    """The (faked) time now when running under faketime, for the browser's clock; else None."""
    return datetime.now(UTC) if under_faketime() else None
