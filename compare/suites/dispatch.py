"""Starting and cancelling suite runs: cases × samples ordinary Runs, each with one
Generation per model, checked against the budget as a whole and released to the task
queue within the author's in-flight limit.

The path: `start_suite_run` validates the request (models that exist and are available,
1–20 samples, a suite with cases, each case's prompt and options valid for the chosen
models by the same rules as the new-comparison form: compare/options.py), estimates the
whole suite run's cost (compare/pricing.py) and checks it against the author's daily
limit once (compare/budget.py `check`), then creates the SuiteRun and every Run through
`runs.create_run` in one transaction. Every case-sample skips the cache of identical
requests (the `regenerate` option, compare/reuse.py): k samples are k generations.

**The in-flight limit (Team settings, "max in flight") and suites.** A suite run is
queued work, not refused for being larger than the limit: a 3 × 2 × 10 suite run is 60
generations and the default limit is 24. Its generations are all stored as queued at
once; as many as the limit leaves free are sent to the task queue on commit, the rest
are *held*: queued, with `Generation.waiting_for` saying why ("Queued behind your other
generations: at most 24 of yours run at once."), and not claimable by a task
(compare/tasks.py `_claim`). Each time a generation of the author ends, its task calls
`release_held`, which sends the next held ones (oldest suite run first, then sample by
sample so early results cover every case and model) while the author's active
generations stay within the limit. Held generations count as "queued or running" for
the author's ordinary comparisons, so those are refused while a big suite run is queued
(the message names the numbers; cancelling the suite run frees them). A server restart
re-sends every queued generation; held ones are skipped by the claim and then released
in order by the same `release_held`. A fallback side added to a suite run's Run
(compare/tasks.py `start_fallback`) joins the held queue too (`hold`), and the server's
sweeper (compare/management/commands/serve.py) calls `release_all_held` after expiring
hung generations, whose tasks will never end to release anything.
"""

import threading
import uuid
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from django import forms
from django.db import router, transaction
from django.db.models import Subquery
from django.utils import timezone

from compare import budget, live, pricing
from compare.judging.forms import parse_tags
from compare.models import Generation, TeamSettings
from compare.options import OPTION_FIELDS, OptionsForm
from compare.parsing import parse_whole_number
from compare.precompiled import Precompiled, prep_of
from compare.registry import Model, get_model, offered_models
from compare.runs import cancel_generations, create_run
from compare.suites.models import Suite, SuiteCase, SuiteRun
from compare.tasks import HELD, enqueue_generations

MIN_SAMPLES, MAX_SAMPLES = 1, 20
# One request writes every row of a suite run; beyond this it would be a batch job, not a click.
MAX_GENERATIONS = 2000
# Inputs RunForm.options() records besides the option fields; suite cases have no images (yet).
INPUT_KEYS = {"references": 0, "mask": False}
# Per thread: a `release_held` is running (see there).
_releasing = threading.local()
# Release order of held generations: oldest suite run first, then sample by sample, case by case.
RELEASE_ORDER = ("run__suite_run__created_at", "run__suite_sample", "run__suite_case", "position", "pk")


class SuiteRunRefused(Exception):
    """A suite run that cannot start; the message says why, with the numbers.

    `field` names the input at fault ("models", "samples", "cases") or is None;
    `over_limit` is True when the budget refused it (the request itself was valid)."""

    def __init__(self, message: str, field: str | None = None, over_limit: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.over_limit = over_limit


@dataclass(frozen=True)
class PreparedCase:
    """A suite case as `create_run` takes it: its index, prompt, canonical options and tags."""

    index: int
    prompt: str
    options: dict[str, Any]
    tags: list[str]


# --- validation ------------------------------------------------------------------------


def check_models(model_keys: Any) -> list[Model]:
    """The chosen models, each known, enabled and available; SuiteRunRefused otherwise."""
    if not isinstance(model_keys, list | tuple) or not all(isinstance(k, str) for k in model_keys):
        raise SuiteRunRefused("Models must be a list of model keys.", "models")
    keys = list(dict.fromkeys(k.strip() for k in model_keys if k.strip()))
    known = ", ".join(m.key for m in offered_models())
    if not keys:
        raise SuiteRunRefused(f"Pick at least one model. Models: {known}.", "models")
    unknown = [k for k in keys if (m := get_model(k)) is None or not m.enabled]
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise SuiteRunRefused(f"Unknown model{'s' if len(unknown) > 1 else ''} {names}. Models: {known}.", "models")
    models = [m for m in map(get_model, keys) if m is not None]
    retired = [m.retirement_refusal() for m in models if m.retired]
    if retired:
        raise SuiteRunRefused(" ".join(retired), "models")
    unavailable = [m.label for m in models if not m.available]
    if unavailable:
        raise SuiteRunRefused(f"Not available right now (no API key): {', '.join(unavailable)}.", "models")
    return models


def check_samples(samples: Any) -> int:
    """k, the samples per case: a whole number from 1 to 20."""
    number = parse_whole_number(samples.strip() if isinstance(samples, str) else samples, minimum=MIN_SAMPLES)
    if number is None or number > MAX_SAMPLES:
        raise SuiteRunRefused(
            f"Samples per case must be a whole number from {MIN_SAMPLES} to {MAX_SAMPLES}, not {samples!r}.", "samples"
        )
    return number


class _CaseOptionsForm(OptionsForm):
    """A case's options, checked against the chosen models exactly as RunForm checks a
    comparison's (an option none of them takes is an error; one some ignore is not)."""

    def __init__(self, data: dict[str, Any], models: list[Model]) -> None:
        super().__init__(data)
        self.chosen = models

    def clean(self) -> dict[str, Any]:
        super().clean()
        self.check_options(self.cleaned_data, self.chosen)
        return self.cleaned_data


def _case_name(index: int, case: SuiteCase) -> str:
    return f"Case {index + 1}" + (f" (“{case.title}”)" if case.title else "")


def prepare_case(index: int, case: SuiteCase, models: list[Model]) -> PreparedCase:
    """The case's prompt, options and tags, valid for `models`; SuiteRunRefused naming the case otherwise."""
    name = _case_name(index, case)
    raw = dict(case.options or {}) if isinstance(case.options, dict) else None
    if raw is None:
        raise SuiteRunRefused(f"{name}: its options are not a set of names and values.", "cases")
    for key, neutral in INPUT_KEYS.items():
        if raw.pop(key, neutral) not in (neutral, None):
            raise SuiteRunRefused(f"{name}: suite cases cannot have reference images or a mask yet.", "cases")
    unknown = sorted(set(raw) - set(OPTION_FIELDS))
    if unknown:
        raise SuiteRunRefused(f"{name}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}.", "cases")
    prompt = (case.prompt or "").strip()
    if not prompt:
        raise SuiteRunRefused(f"{name} has no prompt.", "cases")
    limit = min(m.capabilities.max_prompt_chars for m in models)
    if len(prompt) > limit:
        raise SuiteRunRefused(f"{name}: the prompt is {len(prompt):,} characters; the limit is {limit:,}.", "cases")
    form = _CaseOptionsForm({k: v for k, v in raw.items() if v is not None}, models)
    if not form.is_valid():
        problems = "; ".join(
            f"{field}: {' '.join(str(m) for m in messages)}" for field, messages in form.errors.items()
        )
        raise SuiteRunRefused(f"{name}: {problems}", "cases")
    options = {**{k: form.cleaned_data[k] for k in OPTION_FIELDS}, **INPUT_KEYS}
    # k samples are k generations: a copy of an earlier identical request (compare/reuse.py) is no sample.
    options["regenerate"] = True
    try:
        tags = parse_tags(" ".join(str(t) for t in case.tags or []))
    except forms.ValidationError as exc:
        raise SuiteRunRefused(f"{name}: {' '.join(exc.messages)}", "cases") from None
    return PreparedCase(index, prompt, options, tags)


def _estimates(cases: list[PreparedCase], models: list[Model]) -> list[Decimal | None]:
    """One estimate per case and model (for one sample)."""
    return [pricing.estimate(m, case.options, case.prompt) for case in cases for m in models]


def _range(cases: list[PreparedCase], models: list[Model], samples: int) -> pricing.Estimate | None:
    """The cost of `samples` samples as a range (with quality "auto" the provider picks:
    compare/pricing.py); None when any part has no price (a partial sum would mislead)."""
    spans = [pricing.estimate_range(m, case.options, case.prompt) for case in cases for m in models]
    if not spans or any(s is None for s in spans):
        return None
    one = pricing.total(spans)
    return None if one is None else pricing.Estimate(one.low * samples, one.high * samples)


def estimate_range(suite: Suite, model_keys: list[str], samples: int) -> pricing.Estimate | None:
    """What the suite run would cost, for the page before it starts (its high end is what
    the daily limit counts); None when it cannot be said (an invalid choice, no price)."""
    try:
        models = check_models(model_keys)
        samples = check_samples(samples)
        cases = [prepare_case(i, c, models) for i, c in enumerate(suite.cases.all())]
    except SuiteRunRefused:
        return None
    return _range(cases, models, samples)


# --- starting, releasing, cancelling --------------------------------------------------------


def start_suite_run(suite: Suite, author, model_keys: list[str], samples: int) -> SuiteRun:
    """Start `suite` for `author`: cases × samples Runs of one Generation per model. Raises
    SuiteRunRefused (bad input, or over the daily limit) and then writes nothing."""
    models = check_models(model_keys)
    samples = check_samples(samples)
    with transaction.atomic():
        # The cases and the version they are, as one: an edit of the suite waits (compare/suites/edits.py locks it too).
        suite = Suite.objects.select_for_update().get(pk=suite.pk)
        case_rows = list(suite.cases.all())
        if not case_rows:
            raise SuiteRunRefused(f"The suite “{suite.name}” has no cases yet: add one before running it.", "cases")
        cases = [prepare_case(i, c, models) for i, c in enumerate(case_rows)]
        count = len(cases) * len(models) * samples
        if count > MAX_GENERATIONS:
            raise SuiteRunRefused(
                f"{len(cases)} cases × {len(models)} models × {samples} samples is {count:,} generations; "
                f"a suite run may have at most {MAX_GENERATIONS:,}. Use fewer samples or models.",
                "samples",
            )
        per_sample = _estimates(cases, models)
        try:
            # The whole suite run's cost, once; its generations are queued work (see the module docstring).
            budget.check(
                author,
                per_sample * samples,
                0,
                what=f"This suite run ({count} generations)",
                labels=[m.label for _ in cases for m in models] * samples,
            )
        except budget.BudgetExceeded as exc:
            raise SuiteRunRefused(str(exc), over_limit=True) from None
        suite_run = SuiteRun.objects.create(
            suite=suite,
            suite_name=suite.name,
            suite_version=suite.version,
            cases=[c.snapshot() for c in case_rows],
            model_keys=[m.key for m in models],
            samples=samples,
            author=author,
            estimated_cost_usd=span.high if (span := _range(cases, models, samples)) else None,
        )
        for sample in range(samples):
            for case in cases:
                create_run(
                    author,
                    case.prompt,
                    models,
                    case.options,
                    tags=case.tags,
                    suite_run=suite_run,
                    suite_case=case.index,
                    suite_sample=sample,
                )
        team = TeamSettings.objects.get(pk=1)  # budget.check locked (and created) the row
        Generation.objects.filter(run__suite_run=suite_run).update(waiting_for=held_message(team.max_in_flight))
        _release(author.pk, team.max_in_flight)
    return suite_run


def held_message(limit: int) -> str:
    """`waiting_for` of a held generation (no model name: blind-safe)."""
    return f"{HELD}: at most {limit} of yours run at once." if limit else f"{HELD}."


def hold(generation: Generation, author_id) -> None:
    """Inside a transaction: `generation`, just added to a suite run's Run (a fallback side,
    compare/tasks.py `start_fallback`), waits in its author's held queue like the rest of
    the suite run, and is released on commit if the in-flight limit leaves room."""
    limit = TeamSettings.current().max_in_flight
    Generation.objects.filter(pk=generation.pk).update(waiting_for=held_message(limit))
    generation.waiting_for = held_message(limit)
    transaction.on_commit(partial(release_held, author_id=author_id))


def _held(author_id) -> Any:
    return Generation.objects.filter(
        run__author_id=author_id, status=Generation.Status.QUEUED, waiting_for__startswith=HELD
    )


def _release(author_id, limit: int) -> list:
    """Inside a transaction holding the team settings' row lock: mark as many held
    generations as the limit leaves free as released, and enqueue them on commit."""
    held = _held(author_id).order_by(*RELEASE_ORDER)
    if limit:
        active = Generation.objects.filter(run__author_id=author_id).pending().exclude(waiting_for__startswith=HELD)
        free = limit - active.count()
        if free <= 0:
            return []
        held = held[:free]
    rows = list(held.values_list("pk", "run_id"))
    if not rows:
        return []
    ids = [pk for pk, _ in rows]
    Generation.objects.filter(pk__in=ids, status=Generation.Status.QUEUED).update(waiting_for="")
    transaction.on_commit(partial(enqueue_generations, ids))
    for run_id in {run_id for _, run_id in rows}:
        live.changed(run_id)
    return ids


def _author_of(generation_id) -> Any:
    """The id of the generation's author, as a one-row query."""
    return Generation.objects.filter(pk=generation_id).values("run__author_id")[:1]


def _held_by_author_of(generation_id) -> Any:
    return _held(Subquery(_author_of(generation_id))).order_by().values("pk")[:1]


# Asked by every generation's task when it ends: compiled once (compare/precompiled.py).
_HELD_BY_AUTHOR_OF = Precompiled(
    _held_by_author_of, [(uuid.UUID("00000000-0000-4000-8000-0000000be1d0"), prep_of(Generation, "id"))]
)


def _any_held_by_author_of(generation_id) -> bool:
    """Whether the author of the generation has suite generations held back."""
    return _HELD_BY_AUTHOR_OF.exists(router.db_for_read(Generation), uuid.UUID(str(generation_id)))


def release_held(*, author_id=None, generation_id=None) -> int:
    """Send held suite generations of an author (or of `generation_id`'s author) to the
    task queue while their active generations stay within the in-flight limit; how many
    were sent. Called by each generate task when it ends (compare/tasks.py), and by
    `manage.py suite run` while it waits.

    A task backend that runs a task inside `enqueue` (Django's ImmediateBackend) would
    call this again from within itself, once per held generation, as deep as the queue
    is long; such a nested call only asks the outer one to go round once more."""
    if author_id is None:
        if not _any_held_by_author_of(generation_id):  # every generation's task asks: one query when nothing is held
            return 0
        author_id = _author_of(generation_id).values_list("run__author_id", flat=True).first()
    if author_id is None:
        return 0
    if getattr(_releasing, "active", False):
        _releasing.again = True
        return 0
    _releasing.active, sent = True, 0
    try:
        while True:
            _releasing.again = False
            if not _held(author_id).exists():
                return sent
            with transaction.atomic():
                # The same lock as budget.check: two releases (or a release and a new run) in turn.
                team = TeamSettings.objects.select_for_update().get_or_create(pk=1)[0]
                released = len(_release(author_id, team.max_in_flight))
            sent += released
            if not (released and _releasing.again):
                return sent
    finally:
        _releasing.active = False


def release_all_held() -> int:
    """`release_held` for every author with held generations; how many were sent."""
    authors = (
        Generation.objects.filter(status=Generation.Status.QUEUED, waiting_for__startswith=HELD)
        .values_list("run__author_id", flat=True)
        .distinct()
    )
    return sum(release_held(author_id=author_id) for author_id in list(authors))


def cancel_suite_run(suite_run: SuiteRun) -> int:
    """Cancel every generation of the suite run not yet finished (held ones included); how many."""
    with transaction.atomic():
        count = cancel_generations(Generation.objects.filter(run__suite_run=suite_run))
        if suite_run.cancelled_at is None:
            suite_run.cancelled_at = timezone.now()
            suite_run.save(update_fields=["cancelled_at"])
    for run_id in suite_run.runs.values_list("pk", flat=True):
        live.changed(run_id)
    return count
