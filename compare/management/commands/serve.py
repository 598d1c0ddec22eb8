"""Serve the app with waitress: resume unfinished generations, then serve, believing the
forwarding headers of COMPARE_TRUSTED_PROXIES only (compare/proxies.py). Tasks run in this
process's thread pool unless a durable task backend is configured."""

import logging
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connections
from django.utils import timezone

from compare.models import Generation
from compare.proxies import TrustedProxyMiddleware
from compare.registry import enabled_models
from compare.suites.dispatch import release_all_held
from compare.tasks import enqueue_generations, expire_overdue, resume_checks

logger = logging.getLogger("compare")


def resume_unfinished() -> tuple[int, int]:
    """After a crash or restart: queued generations are sent again; running ones may
    already have been billed by the provider, so they are marked interrupted and
    the user decides (Retry) instead of paying twice behind their back."""
    interrupted = Generation.objects.filter(status=Generation.Status.RUNNING).update(
        status=Generation.Status.FAILED,
        finished_at=timezone.now(),
        error_kind="interrupted",
        error_message="The server stopped while this generation was running. Press Retry to run it again.",
    )
    queued = list(Generation.objects.filter(status=Generation.Status.QUEUED).values_list("id", flat=True))
    enqueue_generations(queued)
    resume_checks()
    return len(queued), interrupted


def sweep() -> tuple[int, int]:
    """Fail generations that outlive their deadline (see tasks.expire_overdue), then send
    the held suite generations their places free (compare/suites/dispatch.py): a hung
    generation's task never ends, so nothing else would release them. (expired, sent)."""
    expired = expire_overdue()
    return expired, release_all_held()


def sweep_forever(interval: float = 30.0) -> None:
    """`sweep` every `interval` seconds."""
    while True:
        time.sleep(interval)
        try:
            sweep()
        except Exception:
            logger.exception("The deadline sweeper failed; it will try again.")
        finally:
            connections.close_all()


class Command(BaseCommand):
    help = "Serve compare on http://HOST:PORT with in-process task execution."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--threads", type=int, default=32, help="Web request threads (tasks have their own pool).")

    def handle(self, *args, host: str, port: int, threads: int, **options):
        from waitress import serve

        from compare.wsgi import application

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
