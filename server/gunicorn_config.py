"""gunicorn's hooks for the web server: ``gunicorn -c python:server.gunicorn_config ...``.

The launcher passes it (``server.launcher.web_command``), and so should a systemd unit
(docs/deploy.md). It keeps Prometheus' multiprocess mode right (``server.core.metrics``):
the counts of an earlier run are removed when the server starts, and a worker process that
exits (a crash, ``max_requests``, a reload) has its live gauges dropped, so ``/metrics``
never shows a dead process's connection or streams. The web server's master loads the face
models before it forks its workers (``server.load_face_models``), so the workers share them and
a door's first request does not wait for them; the stream process (``server.streams``) needs
none. With ``LOG_FORMAT=json`` gunicorn's own
lines (starting, booting a worker, a worker's exit) are JSON too, like the app's.

gunicorn reads this module's names that are its settings (``on_starting``, ``on_reload``,
``child_exit``, ``logger_class``); nothing else here may share a setting's name.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

# The web server's app, as the launcher (``web_command``) and the systemd unit name it.
WEB_APP = "server:create_app()"


def on_starting(server: Any) -> None:
    """In the master, before any worker: a fresh metrics folder; the web server's face models."""
    from server.core.metrics import clear_multiprocess_dir

    clear_multiprocess_dir()
    if getattr(server.app, "app_uri", None) == WEB_APP:
        from server import load_face_models

        load_face_models()


def on_reload(server: Any) -> None:
    """In the master, on SIGHUP, before it forks the new workers: the face engine's code and
    models afresh, so the new workers run a release's new ``gatekeeper`` (the rest of the app
    they import themselves) and still share one copy of the models."""
    if getattr(server.app, "app_uri", None) == WEB_APP:
        import sys

        from server import load_face_models

        for name in [n for n in sys.modules if n == "gatekeeper" or n.startswith("gatekeeper.")]:
            del sys.modules[name]
        load_face_models()


def child_exit(_server: Any, worker: Any) -> None:
    """In the master, once a worker process has exited."""
    from server.core.metrics import process_exited

    process_exited(worker.pid)


class ServerLogger(Logger):
    """gunicorn's logger, writing in the server's ``LOG_FORMAT``."""

    def setup(self, cfg: Any) -> None:  # at start and on every SIGHUP
        super().setup(cfg)
        from server.core.logs import formatter
        from server.settings import Settings, SettingsError

        try:
            log_format = Settings.from_env().log_format
        except SettingsError:
            return  # the workers say what is wrong when they load the app
        if log_format == "text":
            return
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter(log_format))


logger_class = ServerLogger
