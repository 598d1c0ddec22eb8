"""Serve the app with waitress: resume unfinished generations, then serve, believing the
forwarding headers of COMPARE_TRUSTED_PROXIES only (compare/proxies.py). Tasks run in this
process's thread pool unless a durable task backend is configured."""

import atexit
import logging
import os
import socket
import subprocess
import sys
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from compare.models import Generation
from compare.proxies import TrustedProxyMiddleware
from compare.recovery import recover
from compare.registry import enabled_models
from compare.sweeper import sweep_forever
from compare.tasks import enqueue_generations, resume_checks

logger = logging.getLogger("compare")
INTERRUPTED = "The server stopped while this generation was running. Press Retry to run it again."


def resume_unfinished() -> tuple[int, int]:
    """After a crash or restart: queued generations are sent again; running ones may
    already have been billed by the provider, so they are marked interrupted and the user
    decides (Retry), unless the team lets them run again by themselves (compare/recovery.py)."""
    _, interrupted = recover(Generation.objects.all(), INTERRUPTED)
    queued = list(Generation.objects.filter(status=Generation.Status.QUEUED).values_list("id", flat=True))
    enqueue_generations(queued)
    resume_checks()
    return len(queued), interrupted


def _port_free(host: str, port: int) -> bool:
    try:
        with socket.create_server((host, port)):
            return True
    except OSError:
        return False


def _free_port(host: str) -> int:
    with socket.create_server((host, 0)) as probe:
        return probe.getsockname()[1]


def _answers(host: str, port: int, child: subprocess.Popen, timeout: float = 30.0) -> bool:
    """Wait until the simulator accepts connections (False if it died or never did)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def start_simulator(host: str, web_port: int) -> tuple[subprocess.Popen, str] | None:
    """The provider simulator in a process of its own (compare/simulator/management/commands/
    simulator.py) on COMPARE_SIMULATOR_PORT, unless it is off, no model is simulated, or
    COMPARE_SIMULATOR_URL names a simulator elsewhere. The process ends with this one.
    Returns the process and the URL this process now calls it at."""
    if not settings.COMPARE_SIMULATOR_ENABLED or "COMPARE_SIMULATOR_URL" in os.environ:
        return None
    if not any(m.simulated for m in enabled_models()):
        return None
    bind = "127.0.0.1" if host in {"localhost", ""} else host
    port = settings.COMPARE_SIMULATOR_PORT
    if port == web_port or not _port_free(bind, port):
        port = _free_port(bind)
        logger.warning(
            "Port %s is taken: the simulator serves on %s instead; workers elsewhere need "
            "COMPARE_SIMULATOR_URL=http://THIS-HOST:%s/sim.",
            settings.COMPARE_SIMULATOR_PORT,
            port,
            port,
        )
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "django",
            "simulator",
            "--host",
            bind,
            "--port",
            str(port),
            "--parent",
            str(os.getpid()),
        ],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "compare.settings")},
    )
    atexit.register(child.terminate)
    local = "127.0.0.1" if bind in {"0.0.0.0", "::"} else bind  # where this process calls it
    if not _answers(local, port, child):
        child.terminate()
        logger.warning("The simulator did not start; simulated calls go to this server's /sim/ instead.")
        return None
    return child, f"http://{local}:{port}/sim"


def _open_files_for_the_pool() -> None:
    """Hundreds of calls in flight hold a socket each, and each task thread keeps its SQLite
    connection (two files) between tasks (compare/taskbackend.py): the soft limit on open
    files is raised to the hard one (capped), as servers do, where it is lower (1,024 is a
    common default)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ImportError, ValueError, OSError):  # not on this platform, or not allowed: keep it
        pass


class Command(BaseCommand):
    help = "Serve compare on http://HOST:PORT with in-process task execution."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--threads", type=int, default=32, help="Web request threads (tasks have their own pool).")
        parser.add_argument(
            "--no-simulator-process",
            action="store_true",
            help="Answer simulated calls on this server's /sim/ instead of a simulator process of their own.",
        )

    def handle(self, *args, host: str, port: int, threads: int, no_simulator_process: bool = False, **options):
        from waitress import serve

        from compare.wsgi import application

        _open_files_for_the_pool()
        # Before anything is sent: resumed generations already call the simulator.
        simulator = None if no_simulator_process else start_simulator(host, port)
        if simulator is not None:
            settings.COMPARE_SIMULATOR_URL = simulator[1]
            self.stdout.write(f"The provider simulator answers at {simulator[1]} (a process of its own)")
        elif settings.COMPARE_SIMULATOR_ENABLED and "COMPARE_SIMULATOR_URL" not in os.environ:
            settings.COMPARE_SIMULATOR_URL = f"http://127.0.0.1:{port}/sim"

        # Only when tasks run in this process: with a durable queue, workers elsewhere
        # still own the running generations.
        in_process = settings.TASKS["default"]["BACKEND"] == "compare.taskbackend.ThreadPoolBackend"
        resumed, interrupted = resume_unfinished() if in_process else (0, 0)
        if resumed or interrupted:
            self.stdout.write(
                f"Resumed {resumed} queued generation(s); {interrupted} interrupted (retry from the run page)."
            )
        threading.Thread(target=sweep_forever, name="compare-sweeper", daemon=True).start()
        simulated = [m.label for m in enabled_models() if m.simulated]
        if simulated:
            self.stdout.write(f"Simulated (no API key set): {', '.join(simulated)}")
        self.stdout.write(self.style.SUCCESS(f"compare is serving on http://{host}:{port}/  (Ctrl+C to stop)"))
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        # Behind TLS proxies (COMPARE_TRUSTED_PROXIES): their X-Forwarded-For/-Proto/-Host are
        # believed, or HTTPS redirects would loop; anyone else's are dropped (compare/proxies.py).
        # waitress's own trusted_proxy option takes one address or "*" (every address).
        app = TrustedProxyMiddleware(application, settings.COMPARE_TRUSTED_PROXIES)
        serve(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="compare",
            # A client that announces a body and never sends it, or keeps an idle
            # connection open, is dropped after this long (a request being answered is
            # never cut: waitress times out only channels with no request in service).
            channel_timeout=settings.COMPARE_IDLE_TIMEOUT,
            cleanup_interval=max(1, min(30, settings.COMPARE_IDLE_TIMEOUT // 2)),
            clear_untrusted_proxy_headers=False,  # the middleware does it, proxy by proxy
        )
