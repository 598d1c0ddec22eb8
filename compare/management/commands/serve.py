"""Serve the app (embedded profile): resume unfinished generations, then serve
with waitress. Tasks run in this process's thread pool."""

import logging

from django.conf import settings
from django.core.management.base import BaseCommand

from compare.models import Generation
from compare.registry import enabled_models
from compare.tasks import enqueue_generations

logger = logging.getLogger("compare")


def resume_unfinished() -> int:
    """Generations left queued or running by a crash or restart go back in the queue."""
    pending = Generation.objects.pending()
    ids = list(pending.values_list("id", flat=True))
    if ids:
        Generation.objects.filter(id__in=ids, status=Generation.Status.RUNNING).update(
            status=Generation.Status.QUEUED, started_at=None
        )
        enqueue_generations(ids)
    return len(ids)


class Command(BaseCommand):
    help = "Serve compare on http://HOST:PORT with in-process task execution."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--threads", type=int, default=32, help="Web request threads (tasks have their own pool).")

    def handle(self, *args, host: str, port: int, threads: int, **options):
        from waitress import serve

        from compare.wsgi import application

        resumed = resume_unfinished()
        if resumed:
            self.stdout.write(f"Resumed {resumed} unfinished generation(s).")
        simulated = [m.label for m in enabled_models() if m.simulated]
        if simulated:
            self.stdout.write(f"Simulated (no API key set): {', '.join(simulated)}")
        self.stdout.write(self.style.SUCCESS(f"compare is serving on http://{host}:{port}/  (Ctrl+C to stop)"))
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        serve(application, host=host, port=port, threads=threads, ident="compare", channel_timeout=900)
