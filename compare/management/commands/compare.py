"""`manage.py compare "prompt" --models a,b …`: one comparison from the command line.

The run is an ordinary Run row (it shows up in the history). Its generations are
enqueued on commit by `create_run` exactly as for the web form; with the embedded
thread-pool backend they therefore run inside this process, so the command only
watches the database until every generation is terminal. It never calls
`run_generation` itself: the task backend owns execution, and the atomic claim
in the task would make a second call a no-op anyway.
"""

import logging
import os
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.tasks.backends.immediate import ImmediateBackend
from django.test.utils import override_settings
from django.utils import timezone

from compare import budget
from compare.budget import BudgetExceeded
from compare.forms import RunForm
from compare.http import shared_client
from compare.models import Generation, Run
from compare.registry import Model, default_model_keys
from compare.runs import create_run
from compare.tasks import expire_overdue, generate

POLL_SECONDS = 0.25
# How a form field is spelled on this command line, for error messages.
FLAGS = {
    "prompt": "prompt",
    "models": "--models",
    "aspect_ratio": "--aspect",
    "output_format": "--format",
    "partial_images": "--partial-images",
}


def exit_interrupted(command: BaseCommand, message: str) -> NoReturn:
    """Ctrl+C after the rows are cancelled: from a shell with the in-process pool, leave at
    once (its threads would hold the process until their provider calls return, minutes,
    and those results are discarded anyway); otherwise a CommandError with status 130."""
    # A private BaseCommand attribute (set by run_from_argv) that django-stubs does not declare.
    from_shell = command._called_from_command_line  # type: ignore[attr-defined]
    if from_shell and isinstance(generate.get_backend(), ImmediateBackend):
        command.stderr.write(message, style_func=str)
        command.stderr.flush()
        os._exit(130)
    raise CommandError(message, returncode=130)


class Command(BaseCommand):
    help = "Send one prompt to several image models, wait for them, and print a table of the results."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prompt")
        parser.add_argument("--models", help="Comma-separated model keys (default: the registry's default models).")
        parser.add_argument("--aspect", dest="aspect_ratio", help="Aspect ratio, e.g. 16:9 (default 1:1).")
        parser.add_argument("--resolution", help="1K, 2K or 4K (default 1K).")
        parser.add_argument("--size", help="Exact WIDTHxHEIGHT; overrides --aspect and --resolution.")
        parser.add_argument("--quality", help="auto, low, medium or high.")
        parser.add_argument("--format", dest="output_format", help="png, jpeg or webp.")
        parser.add_argument("--background", help="auto, opaque or transparent.")
        parser.add_argument("--n", help="Images per model, 1–4.")
        parser.add_argument("--partial-images", dest="partial_images", help="Streamed previews, 0–3.")
        parser.add_argument(
            "--grounding", action="store_true", help="Google Search grounding (models that support it)."
        )
        parser.add_argument("--user", help="Run as this username (default: the first superuser).")
        parser.add_argument(
            "--no-wait",
            action="store_true",
            help="Print the run's id and URL, no progress and no table. With the embedded task backend the "
            "generations run in this process, so it still ends only when they are done.",
        )

    def handle(self, *args, **opts) -> None:
        form = RunForm(self._form_data(opts))
        if not form.is_valid():
            lines = [
                f"  {FLAGS.get(name, '--' + name.replace('_', '-'))}: {' '.join(str(msg) for msg in msgs)}"
                for name, msgs in form.errors.items()
            ]
            raise CommandError("The comparison is not valid:\n" + "\n".join(lines), returncode=2)
        user = self._user(opts["user"])
        models = form.chosen_models()
        with _quiet_loggers(opts["verbosity"]), _simulator_reachable(models) as local_simulator:
            if local_simulator:
                self._note(
                    f"No simulator answered at the configured URL; using one in this process ({local_simulator})."
                )
            try:
                run = create_run(user, **form.run_fields())
            except BudgetExceeded as exc:
                raise CommandError(str(exc), returncode=2) from None
            url = run_url(run)
            if opts["no_wait"]:
                self.stdout.write(f"{run.id}\n{url}")
                if isinstance(generate.get_backend(), ImmediateBackend):
                    self._note("The task backend runs in this process: waiting for the generations to finish.")
                    self._wait(run, show=False)
                return
            self._note(f"Run {run.short_id}: {url}")
            try:
                generations = self._wait(run, show=True)
            except KeyboardInterrupt:
                self._interrupted(run)
        self.stdout.write(render_table(generations))
        cost = budget.run_cost(generations)  # a footnote under the table, indented like its continuation lines
        bounds = f"at least ${cost.at_least:.4f} / at most ${cost.at_most:.4f}, " if cost.uncertain else ""
        if bounds or cost.prices:
            self.stdout.write(f"  Cost: {bounds}{cost.prices or 'no price dates in the registry'}")
        self.stdout.write(f"\nRun: {url}")
        failed = [g for g in generations if g.status != Generation.Status.SUCCEEDED]
        if failed:
            raise CommandError(f"{len(failed)} of {len(generations)} generations did not succeed.", returncode=1)

    def _interrupted(self, run: Run) -> NoReturn:
        cancelled = (
            Generation.objects.filter(run=run)
            .pending()
            .update(
                status=Generation.Status.CANCELLED,
                finished_at=timezone.now(),
                error_message="Cancelled from the command line.",
            )
        )
        exit_interrupted(self, f"Interrupted: {cancelled} generation(s) cancelled.")

    def _note(self, message: str) -> None:
        # stderr is styled red by default; progress and notes are not errors.
        self.stderr.write(message, style_func=str)

    @staticmethod
    def _form_data(opts: dict) -> dict:
        keys = opts["models"].split(",") if opts["models"] else default_model_keys()
        data: dict = {"prompt": opts["prompt"], "models": [k.strip() for k in keys if k.strip()]}
        for name in (
            "aspect_ratio",
            "resolution",
            "size",
            "quality",
            "output_format",
            "background",
            "n",
            "partial_images",
        ):
            if opts.get(name) is not None:
                data[name] = opts[name]
        data["grounding"] = opts["grounding"]
        return data

    @staticmethod
    def _user(username: str | None):
        users = get_user_model().objects.filter(is_active=True)
        if username:
            user = users.filter(username=username).first()
            if user is None:
                raise CommandError(f"No active user named {username!r}.", returncode=2)
            return user
        user = users.filter(is_superuser=True).order_by("pk").first()
        if user is None:
            raise CommandError(
                "There is no superuser to run as. Create one with `python manage.py ensure_user`, or pass --user NAME.",
                returncode=2,
            )
        return user

    def _wait(self, run: Run, show: bool) -> list[Generation]:
        """Poll the database until every generation is terminal (or past its deadline)."""
        deadline = time.monotonic() + settings.COMPARE_GENERATION_DEADLINE + 60
        progress = Progress(self.stderr) if show else None
        while True:
            generations = list(run.generations.order_by("position"))
            if progress:
                progress.update(generations)
            if all(g.is_terminal for g in generations):
                return generations
            if time.monotonic() > deadline:
                # A side whose worker was lost is failed here, as the server's sweeper would.
                expire_overdue()
                return list(run.generations.order_by("position"))
            time.sleep(POLL_SECONDS)


class Progress:
    """One line per model on stderr: redrawn in place on a terminal, appended on change otherwise."""

    def __init__(self, out: OutputWrapper) -> None:
        self.out = out
        self.tty = out.isatty()
        self.drawn = 0
        self.last: dict[str, str] = {}

    def update(self, generations: list[Generation]) -> None:
        width = max(len(g.model_key) for g in generations)
        lines = {str(g.id): f"  {g.model_key:<{width}}  {g.status:<9}  {_seconds(g):>6.1f}s" for g in generations}
        if self.tty:
            # Move up over the previous block, then rewrite every line (\x1b[2K clears it).
            prefix = f"\x1b[{self.drawn}F" if self.drawn else ""
            self._write(prefix + "".join("\x1b[2K" + line + "\n" for line in lines.values()))
            self.out.flush()
            self.drawn = len(lines)
            return
        for gen in generations:
            if self.last.get(str(gen.id)) != gen.status:
                self.last[str(gen.id)] = gen.status
                self._write(lines[str(gen.id)] + "\n")

    def _write(self, text: str) -> None:
        self.out.write(text, style_func=str, ending="")


def _seconds(gen: Generation) -> float:
    if gen.latency_ms is not None:
        return gen.latency_ms / 1000
    return gen.elapsed_seconds or 0.0


def _image_path(name: str) -> str:
    try:
        return default_storage.path(name)
    except NotImplementedError:  # remote storage (S3) has no local path
        return default_storage.url(name)


def _cost(gen: Generation) -> str:
    charge = budget.charge(gen)  # every billed attempt: "0.0520..0.2630" when one's cost is unknown
    if charge.uncertain:
        return f"{charge.at_least:.4f}..{charge.at_most:.4f}"
    if gen.cost_usd is not None:
        return f"{gen.cost_usd:.4f}"
    if gen.status == Generation.Status.SUCCEEDED and gen.estimated_cost_usd is not None:
        return f"~{gen.estimated_cost_usd:.4f}"  # the estimate, when the provider reported no usage
    return "-"


def render_table(generations: list[Generation]) -> str:
    rows = [("MODEL", "STATUS", "SECONDS", "COST (USD)", "RESULT")]
    for gen in generations:
        if gen.status == Generation.Status.SUCCEEDED:
            results = [_image_path(img.file) for img in gen.final_images()] or ["(no image)"]
        else:
            kind = f"{gen.error_kind}: " if gen.error_kind else ""
            results = [kind + (gen.error_message or "still running after the deadline")]
        rows.append((gen.model_key, gen.status, f"{_seconds(gen):.1f}", _cost(gen), results[0]))
        rows.extend(("", "", "", "", more) for more in results[1:])
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>{widths[3]}}  {r[4]}".rstrip()
        for r in rows
    )


def run_url(run: Run) -> str:
    # No request here: the embedded server's own address is the best guess.
    return f"http://127.0.0.1:{settings.PORT}{run.get_absolute_url()}"


def _reachable(url: str) -> bool:
    try:
        shared_client().get(url, timeout=2.0)
    except httpx.TransportError:
        return False
    return True  # any HTTP answer, even a 404, means a server is listening


@contextmanager
def _quiet_loggers(verbosity: int) -> Iterator[None]:
    """Keep stderr for the progress lines: one INFO line per task state, and the
    in-process simulator's deliberate 5xx replies, would bury them."""
    if verbosity >= 2:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("django.tasks", "django.request")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextmanager
def _simulator_reachable(models: list[Model]) -> Iterator[str | None]:
    """Simulated models call the simulator over HTTP, normally the web server's /sim/.

    When no server is running, serve the simulator from this process on a free
    port so that `compare` works offline on its own.
    """
    if not any(m.simulated for m in models) or _reachable(settings.COMPARE_SIMULATOR_URL):
        yield None
        return
    from django.core.handlers.wsgi import WSGIHandler
    from waitress import wasyncore
    from waitress.server import TcpWSGIServer, create_server

    # Not get_wsgi_application(): its django.setup() would configure logging afresh.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # WhiteNoise warns about a missing STATIC_ROOT it will never serve
        django_app = WSGIHandler()

    def simulator_only(environ, start_response):
        if not environ.get("PATH_INFO", "").startswith("/sim/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"Only the simulator is served here."]
        return django_app(environ, start_response)

    sockets: dict[int, Any] = {}  # the server's own socket map: listening socket, connections, trigger
    server = create_server(simulator_only, map=sockets, host="127.0.0.1", port=0, threads=16)
    if not isinstance(server, TcpWSGIServer):  # one host, one port: always a single TCP server
        raise CommandError("Could not start the simulator in this process.")
    stopping = threading.Event()

    def serve() -> None:
        # waitress's run() loops until its sockets are gone. This loop also ends when asked
        # and then closes the sockets itself: closed from another thread while it waits on
        # them in select(), or while a worker still wakes it, they fail with "Bad file descriptor".
        while not stopping.is_set():
            wasyncore.loop(timeout=0.05, map=sockets, count=1)
        wasyncore.close_all(sockets)

    loop = threading.Thread(target=serve, name="compare-simulator", daemon=True)
    loop.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/sim"
    try:
        with override_settings(COMPARE_SIMULATOR_URL=url):
            yield url
    finally:
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)  # workers finish and exit first
        stopping.set()
        loop.join(timeout=5)
