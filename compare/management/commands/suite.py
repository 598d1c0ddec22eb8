"""`manage.py suite …`: suites from the command line.

    suite list                                          the suites, their versions and cases
    suite run NAME --models a,b --samples 5 [--user U]  run one, with a progress bar, then a table
    suite export NAME [--format json|yaml]              the suite file on stdout (compare/suites/io.py)
    suite import FILE [--replace | --copy] [--user U]   a suite from a .json/.yaml/.yml file

`suite run` starts an ordinary suite run (compare/suites/dispatch.py: the same checks,
budget and in-flight limit as the browser and the API), then watches the database, as
`compare` does (compare/management/commands/compare.py, whose helpers it reuses): with the
embedded thread-pool backend the generations run inside this process. The progress bar
goes to stderr; the final table (case × model: successes k/n, success rate with its 95 %
Wilson interval, median latency, cost — compare/suites/results.py, the numbers of the
suite run page) goes to stdout. Ctrl+C cancels what has not finished.
"""

import time
from pathlib import Path
from typing import NoReturn

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.db import IntegrityError
from django.db.models import Count, Max

from compare.management.commands.compare import Command as CompareCommand
from compare.management.commands.compare import _quiet_loggers, _simulator_reachable, exit_interrupted
from compare.parsing import parse_whole_number
from compare.registry import default_model_keys, get_model
from compare.suites import dispatch, edits, io, results
from compare.suites.models import Suite, SuiteRun
from compare.tasks import expire_overdue

POLL_SECONDS = 0.25
SWEEP_SECONDS = 30.0  # how often the wait fails generations past their deadline, as the server's sweeper does
BAR_WIDTH = 30


class Command(BaseCommand):
    help = "List suites, or run one through several models k times per case and print a table of the results."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{list,run,export,import}")
        actions.add_parser("list", help="The suites, their versions and number of cases.")
        export = actions.add_parser("export", help="Write a suite file to stdout.")
        export.add_argument("name", help="The suite's name or id.")
        export.add_argument("--format", choices=["json", "yaml"], default="yaml")
        imports = actions.add_parser("import", help="Create a suite from a .json, .yaml or .yml file.")
        imports.add_argument("file")
        same_name = imports.add_mutually_exclusive_group()
        same_name.add_argument(
            "--replace", action="store_true", help="A suite with the file's name gets the file's cases (a new version)."
        )
        same_name.add_argument("--copy", action="store_true", help="…or the file becomes a new suite, renamed.")
        imports.add_argument("--user", help="Recorded as its author (default: none).")
        run = actions.add_parser("run", help="Run a suite and print the results table.")
        run.add_argument("name", help="The suite's name (or its id, as `suite list` shows it).")
        run.add_argument("--models", help="Comma-separated model keys (default: the registry's default models).")
        run.add_argument("--samples", default="1", help="Samples per case and model, 1–20 (default 1).")
        run.add_argument("--user", help="Run as this username (default: the first superuser).")

    def handle(self, *args, **opts) -> None:
        if opts["action"] == "list":
            self.stdout.write(render_suites())
        elif opts["action"] == "export":
            suite = find_suite(opts["name"])
            self.stdout.write(io.to_json(suite) if opts["format"] == "json" else io.to_yaml(suite), ending="")
        elif opts["action"] == "import":
            self._import(opts)
        else:
            self._run(opts)

    def _import(self, opts: dict) -> None:
        path = Path(opts["file"])
        try:
            with path.open("rb") as fh:
                content = fh.read(io.MAX_FILE_BYTES + 1)  # one byte more than allowed: parse() names the size
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.", returncode=2) from None
        try:
            data = io.parse(content, path.name)
        except io.SuiteFileError as exc:
            raise CommandError(
                "The suite file is not valid:\n" + "\n".join(f"  {p}" for p in exc.problems), returncode=2
            ) from None
        author = CompareCommand._user(opts["user"]) if opts["user"] else None
        existing = Suite.objects.filter(name=data.name).first()
        if existing is not None and opts["replace"]:
            if existing.builtin:
                raise CommandError(f"“{existing.name}” is built in and cannot be replaced; use --copy.", returncode=2)
            try:
                edits.replace_cases(existing, data.cases, description=data.description)
            except edits.Gone:
                raise CommandError(
                    f"“{existing.name}” was deleted meanwhile; nothing was imported.", returncode=2
                ) from None
            self.stdout.write(f"“{existing.name}” is now version {existing.version}, with {len(data.cases)} cases.")
            return
        if existing is not None and not opts["copy"]:
            raise CommandError(
                f"A suite named “{data.name}” exists (version {existing.version}). Pass --replace to give it the "
                "file's cases as a new version, or --copy to import the file as a new suite.",
                returncode=2,
            )
        name = edits.free_name(data.name) if existing is not None else data.name
        try:
            suite = edits.create_suite(name=name, description=data.description, cases=data.cases, author=author)
        except IntegrityError:  # created by someone else meanwhile
            raise CommandError(f"A suite named “{name}” was created meanwhile; import again.", returncode=2) from None
        self.stdout.write(f"Imported “{suite.name}” (id {suite.pk}): {len(data.cases)} cases.")

    # --- suite run ---------------------------------------------------------------------

    def _run(self, opts: dict) -> None:
        suite = find_suite(opts["name"])
        keys = [k.strip() for k in opts["models"].split(",")] if opts["models"] else default_model_keys()
        user = CompareCommand._user(opts["user"])
        models = [m for m in map(get_model, keys) if m is not None]
        with _quiet_loggers(opts["verbosity"]), _simulator_reachable(models) as local:
            if local:
                self._note(f"No simulator answered at the configured URL; using one in this process ({local}).")
            try:
                suite_run = dispatch.start_suite_run(suite, user, keys, opts["samples"])
            except dispatch.SuiteRunRefused as exc:
                flag = {"models": "--models: ", "samples": "--samples: "}.get(exc.field or "", "")
                raise CommandError(flag + exc.message, returncode=2) from None
            self._note(
                f"Suite run of “{suite_run.suite_name}” v{suite_run.suite_version}: {len(suite_run.cases)} cases × "
                f"{len(suite_run.model_keys)} models × {suite_run.samples} samples; {suite_run_url(suite_run)}"
            )
            try:
                self._wait(suite_run, user.pk)
            except KeyboardInterrupt:
                self._interrupted(suite_run)
        self.stdout.write(render_results(results.summarize(suite_run)))
        self.stdout.write(f"\nSuite run: {suite_run_url(suite_run)}")

    def _wait(self, suite_run: SuiteRun, author_id: int) -> results.Progress:
        bar = ProgressBar(self.stderr)
        swept = time.monotonic()
        while True:
            progress = results.progress(suite_run)
            bar.update(progress)
            if progress.finished:
                bar.close()
                return progress
            if time.monotonic() - swept > SWEEP_SECONDS:
                # No server sweeper may be running: fail what outlived its deadline, release what it held.
                expire_overdue()
                dispatch.release_held(author_id=author_id)
                swept = time.monotonic()
            time.sleep(POLL_SECONDS)

    def _interrupted(self, suite_run: SuiteRun) -> NoReturn:
        cancelled = dispatch.cancel_suite_run(suite_run)
        exit_interrupted(self, f"Interrupted: the suite run is cancelled ({cancelled} generation(s) had not finished).")

    def _note(self, message: str) -> None:
        self.stderr.write(message, style_func=str)


def find_suite(name: str) -> Suite:
    """The suite named `name` (exactly, else ignoring case), or with that id."""
    suite = Suite.objects.filter(name=name).first() or Suite.objects.filter(name__iexact=name).first()
    number = parse_whole_number(name, minimum=1, maximum=2**63 - 1)
    if suite is None and number is not None:
        suite = Suite.objects.filter(pk=number).first()
    if suite is None:
        names = ", ".join(f"“{n}”" for n in Suite.objects.values_list("name", flat=True)) or "none yet"
        raise CommandError(f"No suite named “{name}”. Suites: {names}.", returncode=2)
    return suite


def suite_run_url(suite_run: SuiteRun) -> str:
    # No request here: the embedded server's own address is the best guess (as `compare` does).
    return f"http://127.0.0.1:{settings.PORT}{suite_run.get_absolute_url()}"


class ProgressBar:
    """One line on stderr: redrawn in place on a terminal, printed again on change otherwise."""

    def __init__(self, out: OutputWrapper) -> None:
        self.out = out
        self.tty = out.isatty()
        self.last = ""

    def update(self, p: results.Progress) -> None:
        line = progress_line(p)
        counts = line.rsplit(" · ", 2)[0]  # without the elapsed time and cost, which change every poll
        if self.tty:
            self.out.write("\r\x1b[2K" + line, style_func=str, ending="")
            self.out.flush()
        elif counts != self.last:
            self.out.write(line, style_func=str)
        self.last = counts

    def close(self) -> None:
        if self.tty:
            self.out.write("", style_func=str)


def progress_line(p: results.Progress) -> str:
    """ "[######······] 12/60 · done 10 · failed 2 · running 5 · queued 43 (36 waiting) · 42 s · $0.53 of ≈ $3.18" """
    finished = p.finished_count
    filled = round(BAR_WIDTH * finished / p.total) if p.total else BAR_WIDTH
    parts = [
        f"[{'#' * filled}{'·' * (BAR_WIDTH - filled)}] {finished}/{p.total}",
        f"done {p.done}",
        f"failed {p.failed}",
    ]
    if p.cancelled:
        parts.append(f"cancelled {p.cancelled}")
    parts.append(f"running {p.running}")
    parts.append(f"queued {p.queued}" + (f" ({p.waiting} waiting)" if p.waiting else ""))
    if p.checking:
        parts.append(f"checking {p.checking}")
    estimate = f" of ≈ ${p.estimated_cost_usd:.2f}" if p.estimated_cost_usd is not None else ""
    parts.append(f"{p.elapsed_seconds:.0f} s")
    parts.append(f"${p.actual_cost_usd:.2f}{estimate}")
    return " · ".join(parts)


def _table(rows: list[tuple[str, ...]], right: set[int]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_results(summary: results.Summary) -> str:
    """The final table: one row per case and model, then one per model over every case;
    the verdicts and the rule below it."""
    rows: list[tuple[str, ...]] = [("CASE", "MODEL", "SUCCESS", "RATE (95 % CI)", "MEDIAN S", "COST (USD)")]
    for case in summary.cases:
        for i, cell in enumerate(case.cells):
            rate = cell.counted
            rows.append(
                (
                    f"{case.index + 1} {case.title}"[:48] if i == 0 else "",
                    cell.model_key,
                    f"{rate.successes}/{rate.n}",
                    rate.text(),
                    _seconds(cell.median_latency_s),
                    f"{cell.cost:.4f}",
                )
            )
    for i, model in enumerate(summary.models):
        rate = model.counted
        rows.append(
            (
                "ALL CASES" if i == 0 else "",
                model.key,
                f"{rate.successes}/{rate.n}",
                rate.text(),
                _seconds(model.median_latency_s),
                f"{model.cost:.4f}",
            )
        )
    verdicts = [f"  {case.index + 1} {case.title}: {case.verdict.text}" for case in summary.cases]
    verdicts += [f"    {line}" for case in summary.cases for line in (case.text_checks, case.spec_checks) if line]
    overall = [f"  {line}" for line in (summary.overall, summary.spec_checks) if line]
    return "\n".join([_table(rows, right={2, 4, 5}), "", "Verdicts:", *verdicts, *overall, "", summary.rule])


def render_suites() -> str:
    suites = Suite.objects.annotate(case_count=Count("cases", distinct=True), last=Max("suite_runs__created_at"))
    if not suites:
        return "No suites yet. Create one at /suites/ in the browser."
    rows: list[tuple[str, ...]] = [("ID", "NAME", "VERSION", "CASES", "LAST RUN")]
    for s in suites.order_by("name"):
        last = f"{s.last:%Y-%m-%d %H:%M}" if s.last else "never"
        rows.append((str(s.pk), s.name, str(s.version), str(s.case_count), last))
    return _table(rows, right={0, 2, 3})
