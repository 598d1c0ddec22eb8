"""Serve only the provider simulator, in a process of its own: `manage.py serve` starts it
(see compare/management/commands/serve.py), so simulated calls, which sleep their latency
in a thread each, never take the web server's threads, and its drawing never competes
with the app's for one interpreter. It can also run alone, e.g. on another machine."""

import logging
import os
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand


def exit_with(parent: int) -> None:
    """End this process soon after `parent` ends (killed or not), so no simulator outlives its server."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _give_way(niceness: int) -> None:
    """Lower this process's CPU priority to `niceness` (compare/settings.py COMPARE_SIMULATOR_NICE),
    where the platform allows it."""
    try:
        current = os.nice(0)
        if niceness > current:
            os.nice(min(niceness, 19) - current)
    except (AttributeError, OSError):  # no nice() here, or not allowed: the simulator still serves
        pass


class Command(BaseCommand):
    help = "Serve the provider simulator alone on http://HOST:PORT/sim/ (serve starts it on its own)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.COMPARE_SIMULATOR_PORT)
        parser.add_argument(
            "--threads",
            type=int,
            default=settings.COMPARE_SIMULATOR_THREADS,
            help="Calls answered at once (each sleeps its simulated latency in a thread).",
        )
        parser.add_argument("--parent", type=int, default=0, help="Exit when the process with this id ends.")

    def handle(self, *args, host: str, port: int, threads: int, parent: int, **options):
        from django.core.handlers.wsgi import WSGIHandler
        from waitress import serve

        # Only the simulator's routes, and none of the app's middleware (sessions, login,
        # CSP): its views are open, CSRF-exempt and ask for an API key as the providers do.
        settings.ROOT_URLCONF = "compare.simulator.urls_root"
        settings.MIDDLEWARE = []
        application = WSGIHandler()
        _give_way(settings.COMPARE_SIMULATOR_NICE)
        if parent:
            threading.Thread(target=exit_with, args=(parent,), name="simulator-parent-watch", daemon=True).start()
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        self.stdout.write(f"The provider simulator is serving on http://{host}:{port}/sim/ ({threads} threads)")
        serve(
            application,
            host=host,
            port=port,
            threads=threads,
            ident="compare-simulator",
            connection_limit=threads + 64,
            backlog=max(1024, threads),
            asyncore_use_poll=True,  # select() stops at 1024 descriptors
            channel_timeout=max(120, settings.COMPARE_IDLE_TIMEOUT),
        )
