"""The domain: Run, Generation, Image, Vote, Note, ApiToken.

The Generation row is the record of every provider call: what was asked, what was
sent, what came back, how long it took and what it cost.
"""

import hashlib
import secrets
import uuid
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connections, models, router, transaction
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    Exists,
    ExpressionWrapper,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.db.models.signals import post_delete, post_save
from django.db.models.sql import UpdateQuery
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone

from compare.precompiled import Precompiled, prep_of
from compare.registry import get_model

if TYPE_CHECKING:  # only names for the type checker: both modules import this one
    from compare.budget import Charge
    from compare.live import State
    from compare.pricing import Estimate


class TeamSettings(models.Model):
    """Team-wide defaults an admin edits (one row)."""

    blind_by_default = models.BooleanField(
        default=False, help_text="New comparisons hide model names until each viewer has voted."
    )
    leaderboard_min_votes = models.PositiveIntegerField(
        default=10, help_text="Below this many votes a model's score is marked preliminary."
    )
    daily_budget_usd = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        default=50,
        help_text="Each person's spending limit per day (estimated cost of the runs they start); 0 = no limit.",
    )
    max_in_flight = models.PositiveIntegerField(
        default=24, help_text="How many generations one person may have queued or running at once; 0 = no limit."
    )
    rerun_interrupted = models.BooleanField(
        "re-run interrupted generations",
        default=False,
        help_text="When the server or worker running a generation stops, run it again by itself (once) instead of"
        " waiting for Retry. The provider may have billed the interrupted call, so such a generation can cost twice.",
    )

    class Meta:
        verbose_name = verbose_name_plural = "team settings"

    def __str__(self) -> str:
        return "Team settings"

    @classmethod
    def current(cls) -> "TeamSettings":
        """The team's row, or the defaults while no admin has saved one (read-only: pages
        call this on GET, and a GET never writes)."""
        return cls.objects.filter(pk=1).first() or cls(pk=1)


class Tag(models.Model):
    name = models.SlugField(max_length=40, unique=True, allow_unicode=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Criterion(models.Model):
    """A quality a team rates each generation on (1–5 stars); editable by an admin."""

    name = models.CharField(max_length=60, unique=True)
    description = models.CharField(max_length=200, blank=True)
    position = models.PositiveSmallIntegerField(default=0)
    active = models.BooleanField(default=True)
    # The criterion whose rating decides "usable as delivered" on the scorecard.
    is_usability = models.BooleanField(default=False)

    class Meta:
        ordering = ["position", "name"]
        verbose_name_plural = "criteria"

    def __str__(self) -> str:
        return self.name


def count_of(model, link: str = "run", **filters) -> Coalesce:
    """A correlated COUNT of `model` rows whose `link` is the outer row: unlike
    Count() over joins it does not multiply with other joins or annotations."""
    rows = model.objects.filter(**{link: OuterRef("pk")}, **filters).order_by().values(link)
    return Coalesce(Subquery(rows.annotate(n=Count("pk")).values("n")), 0, output_field=IntegerField())


def state_rule() -> Case:
    """A run's status from its generations, as SQL over the outer run: "empty" (no side),
    "running" (a side queued or running), "done" (every side succeeded), "partial" (some
    succeeded) or "failed" (none did). Stored in `Run.state` by `RunQuerySet.refresh_state`."""
    gens = Generation.objects.filter(run=OuterRef("pk"))
    return Case(
        When(~Exists(gens), then=Value("empty")),
        When(Exists(gens.filter(status__in=Generation.PENDING)), then=Value("running")),
        When(~Exists(gens.exclude(status=Generation.Status.SUCCEEDED)), then=Value("done")),
        When(Exists(gens.filter(status=Generation.Status.SUCCEEDED)), then=Value("partial")),
        default=Value("failed"),
        output_field=CharField(),
    )


class RunQuerySet(models.QuerySet):
    """Runs as a viewer sees them. Each rule below is written once, in SQL, so a
    page, a filter, a paginator count, the API and the exports all agree."""

    def refresh_state(self, run_ids=None, *, now_pending: bool = False) -> int:
        """The one writer of `Run.state`: recompute the stored status of these runs from
        their generations, in one UPDATE. Called on every change of a generation's status
        (`GenerationQuerySet.update`, and the Generation signals at the end of this module
        for a side added, saved or deleted); with no `run_ids`, every unfinished run (rows
        written without signals, such as a bulk load). On PostgreSQL the runs' rows are
        locked first, so two sides finishing at once cannot leave a stale "running" behind:
        the second writer waits for the first to commit, then reads both outcomes.
        `now_pending`: a side of each run has just been queued or claimed, so the rule's answer
        is "running" without reading the sides (the hot path of every claim and new side)."""
        runs = self.filter(state__in=Run.UNFINISHED) if run_ids is None else self.filter(pk__in=run_ids)
        alias = router.db_for_write(Run)
        one = list(run_ids) if run_ids is not None and len(run_ids) == 1 else None
        if now_pending:  # a side is queued or running: the run is "running", whatever its other sides
            if one is None:
                return runs.exclude(state="running").update(state="running")
            return _PENDING_UPDATE.execute(alias, one[0])  # each new side and each claim: compiled once
        with transaction.atomic(using=alias, savepoint=False):  # nested: no savepoint to write
            if connections[alias].features.has_select_for_update:
                list(runs.select_for_update().order_by("pk").values_list("pk", flat=True))
            if one is None:
                return runs.update(state=state_rule())
            # One run (every generation that ends): the statement compiled once (compare/precompiled.py).
            return _STATE_UPDATE.execute(alias, one[0])

    def finished(self):
        """Runs whose every generation has finished (votes open then)."""
        return self.exclude(state__in=Run.UNFINISHED)

    def with_viewer(self, user, *, arena: bool = False):
        """`names_hidden`: the blind rule. A blind run (or any run judged from the arena
        queue) hides its model names from a viewer until that viewer has voted on it or
        asked to see the names. Also `voted_by_me` and `revealed_to_me`."""
        not_seen = Q(voted_by_me=False, revealed_to_me=False)
        return self.annotate(
            voted_by_me=Exists(Vote.objects.filter(run=OuterRef("pk"), user=user)),
            revealed_to_me=Exists(Reveal.objects.filter(run=OuterRef("pk"), user=user)),
        ).annotate(
            names_hidden=ExpressionWrapper(not_seen if arena else Q(blind=True) & not_seen, output_field=BooleanField())
        )

    def with_image_sides(self):
        """`image_sides`: how many sides delivered at least one final image. Only those
        can be voted better, tie with another, or meet in a leaderboard battle."""
        delivered = Generation.objects.delivered().filter(run=OuterRef("pk")).order_by().values("run")
        count = Subquery(delivered.annotate(n=Count("pk")).values("n"))
        return self.annotate(image_sides=Coalesce(count, 0, output_field=IntegerField()))

    def judge_queue(self, user):
        """The Judge queue of `user`: runs whose model names this viewer has never seen
        (not theirs, not voted on, not revealed or opened with the names visible: the
        `names_hidden` rule of `with_viewer(arena=True)`), every side finished, at least
        two sides with an image, and not part of a suite run. Newest first."""
        return (
            self.finished()
            .with_viewer(user, arena=True)
            .with_image_sides()
            # A suite run's results page names every thumbnail's model: its runs cannot be judged blind.
            .filter(names_hidden=True, image_sides__gte=2, suite_run__isnull=True)
            .exclude(author=user)
            .order_by("-created_at", "-pk")
        )

    def with_tally(self):
        """The vote tally: `votes_total`, `ties_total` and `all_bad_total` on each run,
        `wins_total` on each of its generations (prefetched)."""
        # Unpacked from a dict: Generation declares `wins_total`, which django-stubs would otherwise see redefined.
        generations = Generation.objects.annotate(**{"wins_total": count_of(Vote, "winner")})
        return self.annotate(
            votes_total=count_of(Vote),
            ties_total=count_of(Vote, verdict=Vote.Verdict.TIE),
            all_bad_total=count_of(Vote, verdict=Vote.Verdict.ALL_BAD),
        ).prefetch_related(Prefetch("generations", queryset=generations))

    def for_viewer(self, user, *, arena: bool = False):
        """What every page, API reply and export of runs needs for this viewer: names
        hidden or not, the tally, the status and the number of notes. Further
        `generations__…` lookups may be prefetched on top."""
        return self.with_viewer(user, arena=arena).with_tally().annotate(notes_total=count_of(Note))


def _state_update(run_id, pending: bool = False) -> SimpleNamespace:
    """`UPDATE run SET state = state_rule() WHERE id = run_id` (with `pending`: SET state =
    'running' WHERE id = run_id AND state <> 'running'), as something with a `query` for
    Precompiled."""
    runs = Run.objects.filter(pk=run_id)
    query = (runs.exclude(state="running") if pending else runs).query.chain(UpdateQuery)
    assert isinstance(query, UpdateQuery)  # chain() returns the class asked for
    query.add_update_values({"state": Value("running") if pending else state_rule()})
    return SimpleNamespace(query=query)


class Run(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="runs")
    prompt = models.TextField()
    # The canonical options as the user chose them (aspect, resolution, quality, …).
    options = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Blind: sides are shuffled and shown as A, B, … until the viewer has voted.
    blind = models.BooleanField(default=False)
    tags = models.ManyToManyField(Tag, blank=True, related_name="runs")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    # A case-sample of a suite run: which case (its index in SuiteRun.cases) and which sample (0…k-1).
    suite_run = models.ForeignKey("SuiteRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    suite_case = models.PositiveSmallIntegerField(null=True, blank=True)
    suite_sample = models.PositiveSmallIntegerField(null=True, blank=True)
    # The run's status, stored so lists can filter and page on it with an index: "empty",
    # "running", "done", "partial" or "failed" (`state_rule`). Written only by
    # `RunQuerySet.refresh_state`, whenever a generation's status changes.
    state = models.CharField(max_length=8, default="empty", editable=False)

    # Statuses of a run that still has work to do, or none.
    UNFINISHED = ("running", "empty")

    # Set on runs loaded through RunQuerySet (with_viewer, with_tally, for_viewer).
    names_hidden: bool
    voted_by_me: bool
    revealed_to_me: bool
    votes_total: int
    ties_total: int
    all_bad_total: int
    notes_total: int
    image_sides: int
    # Set by compare/views/run.py `get_run_or_404`: the run's live stamps, read before it.
    live_state: "State"

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The history's keyset pages: (created_at, id) in either direction, and by status.
            models.Index(fields=["created_at", "id"], name="run_created_id"),
            models.Index(fields=["state", "created_at", "id"], name="run_state_created_id"),
        ]

    def __str__(self) -> str:
        return self.prompt[:60]

    def get_absolute_url(self) -> str:
        return reverse("run_detail", args=[self.id])

    @property
    def short_id(self) -> str:
        return str(self.id)[:8]

    def ordered_generations(self):
        """Display order: the shuffled order for blind runs, the chosen order otherwise."""
        key = (lambda g: g.blind_position) if self.blind else (lambda g: g.position)
        return sorted(self.generations.all(), key=key)

    @property
    def status(self) -> str:
        """The stored status (`state`)."""
        return self.state

    @property
    def suite_case_snapshot(self) -> dict:
        """The case of its suite run this run samples (SuiteRun.cases), or {}."""
        cases = self.suite_run.cases if self.suite_run is not None else []
        index = self.suite_case
        return cases[index] if index is not None and 0 <= index < len(cases) and isinstance(cases[index], dict) else {}

    @property
    def is_finished(self) -> bool:
        return self.status not in self.UNFINISHED

    @property
    def total_cost(self) -> Decimal | None:
        """What the providers' usage says the run cost: a lower bound when some attempt
        stopped without usage (it may have been billed all the same: `total_cost_max`)."""
        costs = [g.cost_usd for g in self.generations.all() if g.cost_usd is not None]
        return sum(costs, Decimal("0")) if costs else None

    @property
    def total_cost_max(self) -> Decimal | None:
        """At most what the run cost, counting each attempt that may have been billed at its
        estimate (compare/budget.py `tally`); None when every attempt's cost is known."""
        gens = list(self.generations.all())
        if all(g.cost_max_usd is None for g in gens):
            return None
        return sum((g.cost_max_usd or g.cost_usd or Decimal("0") for g in gens), Decimal("0"))


class GenerationQuerySet(models.QuerySet):
    def update(self, **kwargs) -> int:
        """A change of `status` also refreshes the stored status of the runs concerned
        (`RunQuerySet.refresh_state`), in the same transaction: a task's claim and outcome,
        cancel, retry, the deadline sweeper and crash recovery all write this way."""
        if "status" not in kwargs:
            return super().update(**kwargs)
        with transaction.atomic(using=self.db, savepoint=False):  # nested: no savepoint to write
            run_ids = set(self.values_list("run_id", flat=True))
            updated = super().update(**kwargs)
            if updated:
                Run.objects.refresh_state(run_ids, now_pending=kwargs["status"] in Generation.PENDING)
        return updated

    def pending(self):
        return self.filter(status__in=Generation.PENDING)

    def delivered(self):
        """Succeeded with at least one final image (streamed previews do not count)."""
        finals = Image.objects.filter(generation=OuterRef("pk"), is_partial=False)
        return self.filter(status=Generation.Status.SUCCEEDED).filter(Exists(finals))


ERROR_HEADLINES = {
    "rate_limit": "The provider kept rate-limiting the request.",
    "overloaded": "The provider is overloaded.",
    "timeout": "The provider took too long to answer.",
    "server": "The provider had an internal error.",
    "network": "The provider could not be reached.",
    "malformed": "The provider sent a reply that could not be read.",
    "bad_request": "The provider rejected the request.",
    "auth": "The API key was rejected.",
    "quota": "The account's quota or billing limit is used up.",
    "not_found": "The model was not found (retired or misspelt id?).",
    "interrupted": "The server stopped while this was running.",
    "budget": "Stopped by the spending limit.",
}


class CheckStatus(models.TextChoices):
    NONE = "", "Not checked"
    PENDING = "pending", "Checking"
    PASSED = "passed", "Checks passed"
    FAILED = "failed", "Checks failed"
    UNAVAILABLE = "unavailable", "Check unavailable"


class Generation(models.Model):
    CheckStatus = CheckStatus

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Done"
        FAILED = "failed", "Failed"
        REFUSED = "refused", "Refused"
        CANCELLED = "cancelled", "Cancelled"

    # Not finished yet: a task will still write the outcome. Every other status is final
    # (`is_terminal`). The one list of them, in Python and in SQL (`pending()`, `Run.status`).
    PENDING = (Status.QUEUED, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="generations")
    position = models.PositiveSmallIntegerField()
    # The side's place and letter in blind mode (a shuffle of the positions).
    blind_position = models.PositiveSmallIntegerField(default=0)
    model_key = models.CharField(max_length=100)
    # Snapshot of the registry entry at submit time, so history survives registry edits.
    model_label = models.CharField(max_length=200)
    model_id = models.CharField(max_length=200)
    simulated = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Set each time a task claims the row: only that task may write the outcome, so a
    # task left over from before a cancel + retry cannot overwrite the new attempt.
    claim = models.UUIDField(null=True, blank=True, editable=False)
    attempt_log = models.JSONField(default=list, blank=True)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    estimated_cost_usd = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    # What the providers' usage reports, summed over every attempt (compare/budget.py).
    cost_usd = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    # The most its attempts may have cost when some were billed without reporting usage (a
    # timeout, an unreadable reply): cost_usd plus each such attempt at its estimate; None otherwise.
    cost_max_usd = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    params_sent = models.JSONField(default=dict, blank=True)
    params_echoed = models.JSONField(default=dict, blank=True)
    text = models.TextField(blank=True)
    grounding = models.JSONField(null=True, blank=True)
    error_kind = models.CharField(max_length=32, blank=True)
    error_message = models.TextField(blank=True)
    # A backup that ran because this run's fallback rule fired for `fallback_of`.
    fallback_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="fallbacks")
    # Options of this generation that differ from the run's (a lower-quality fallback).
    option_overrides = models.JSONField(default=dict, blank=True)
    # The automatic checks (compare/checks/): text rendering by OCR and the specification
    # (size, format, transparency, count), run after the images are stored. `checks` holds
    # the details (the schema is in compare/checks/__init__.py), `check_status` the outcome.
    check_status = models.CharField(max_length=12, choices=CheckStatus.choices, blank=True, db_index=True)
    checks = models.JSONField(default=dict, blank=True)
    # Why a queued generation has not started yet ("waiting for gpt-image-2's rate limit").
    waiting_for = models.CharField(max_length=200, blank=True)
    # Identical requests (model, prompt, options, inputs) share this key; a hit within
    # the cache window reuses `cached_from`'s images at no cost.
    cache_key = models.CharField(max_length=64, blank=True, db_index=True)
    cached_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    objects = GenerationQuerySet.as_manager()

    # Set on generations of a run loaded with RunQuerySet.with_tally: votes naming it the better side.
    wins_total: int
    # Set for one viewer by compare/judging/blind.py `prepare`: the side's letter and its name,
    # what voting it better posts, whether its outcome is withheld (hidden, run unfinished)
    # and the images it shows (originals, or blind display copies).
    side: str | None
    display_name: str
    choice_value: str
    withheld: bool
    shown_images: list
    # Set for one viewer by compare/views/run.py: their stars per active criterion, and
    # the notes pinned to this side.
    my_ratings: list[tuple["Criterion", int | None]]
    pinned_notes: list["Note"]
    # Also set there: its live stamp (compare/live.py), whether an update redraws it, what
    # it cost (compare/budget.py `charge`) and the seconds its pane shows.
    live: str
    live_changed: bool
    charge: "Charge"
    estimate: "Estimate | None"  # the estimate as a range (compare/pricing.py), for a pane still working
    latency_s: float | None

    class Meta:
        ordering = ["run", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "position"], name="unique_generation_position")]
        # The history's model filter asks of each candidate run whether a side is of that model.
        indexes = [models.Index(fields=["run", "model_key"], name="generation_run_model")]

    def __str__(self) -> str:
        return f"{self.model_key} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status not in self.PENDING

    @property
    def model(self):
        return get_model(self.model_key)

    def estimate_range(self) -> "Estimate | None":
        """Its estimate as a range (compare/pricing.py: with quality "auto" the provider picks),
        while today's registry still gives the high end stored when it was made; None once the
        prices or the size rules have changed since (the stored number is what it was estimated at)."""
        from compare import pricing  # pricing reads the registry; this module is imported first

        if self.model is None:
            return None
        span = pricing.estimate_range(self.model, {**self.run.options, **self.option_overrides}, self.run.prompt)
        return span if span is not None and span.high == self.estimated_cost_usd else None

    @property
    def elapsed_seconds(self) -> float | None:
        if not self.started_at:
            return None
        end = self.finished_at or timezone.now()
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def error_headline(self) -> str:
        if self.status == self.Status.CANCELLED:
            return "Cancelled."
        if self.status == self.Status.REFUSED:
            return f"{self.model_label} refused this prompt."
        return ERROR_HEADLINES.get(self.error_kind, "This generation failed.")

    @property
    def failed_attempts(self) -> list[dict]:
        return [a for a in self.attempt_log if isinstance(a, dict) and a.get("ok") is False]

    def final_images(self):
        return [img for img in self.images.all() if not img.is_partial]

    @property
    def delivered(self) -> bool:
        """Succeeded with at least one final image (`GenerationQuerySet.delivered` in SQL):
        only such a side can be voted better or tie, or meet another in a battle."""
        return self.status == self.Status.SUCCEEDED and bool(self.final_images())

    def latest_preview(self):
        partials = [img for img in self.images.all() if img.is_partial]
        return partials[-1] if partials else None


def image_upload_path(sha256: str, ext: str) -> str:
    return f"images/{sha256[:2]}/{sha256}.{ext}"


class StoredImage(models.Model):
    """An image file in storage, content-addressed: identical bytes share one file."""

    sha256 = models.CharField(max_length=64, db_index=True)
    file = models.CharField(max_length=200)
    thumbnail = models.CharField(max_length=200)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=10)
    bytes = models.PositiveIntegerField()
    has_alpha = models.BooleanField(default=False)

    FIELDS = ("sha256", "file", "thumbnail", "width", "height", "format", "bytes", "has_alpha")

    class Meta:
        abstract = True

    def stored_fields(self) -> dict:
        """The file and its metadata, to point another row at the same stored file."""
        return {name: getattr(self, name) for name in self.FIELDS}

    @property
    def mime_type(self) -> str:
        return {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}.get(
            self.format, "application/octet-stream"
        )


class Image(StoredImage):
    """One output file of a generation (a streamed preview when is_partial)."""

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="images")
    index = models.PositiveSmallIntegerField(default=0)
    is_partial = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["generation", "is_partial", "index", "created_at"]

    def __str__(self) -> str:
        return f"{self.sha256[:12]} {self.width}×{self.height} {self.format}"

    @property
    def url(self) -> str:
        return reverse("image_file", args=[self.sha256])

    @property
    def thumbnail_url(self) -> str:
        return reverse("image_thumbnail", args=[self.sha256])


class Reference(StoredImage):
    """An input image of a run: a reference image, or the mask or the markup overlay
    (GPT Image 2.5) for the first one.

    Uploads are verified and re-encoded before they get here; the file is
    content-addressed like every output image."""

    class Kind(models.TextChoices):
        REFERENCE = "reference", "Reference"
        MASK = "mask", "Mask"
        MARKUP = "markup", "Markup overlay"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="references")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.REFERENCE)
    position = models.PositiveSmallIntegerField(default=0)
    name = models.CharField(max_length=200, blank=True)
    # Set when the reference is an output image of an earlier run.
    source_image = models.ForeignKey(
        "Image", null=True, blank=True, on_delete=models.SET_NULL, related_name="reused_as"
    )

    class Meta:
        ordering = ["run", "kind", "position"]

    def __str__(self) -> str:
        return f"{self.kind} {self.position} of {self.run_id}"

    @property
    def url(self) -> str:
        return reverse("reference_file", args=[self.pk])

    @property
    def thumbnail_url(self) -> str:
        return reverse("reference_thumbnail", args=[self.pk])


class Vote(models.Model):
    """One person's verdict on a run: one side is better (the `winner`), a tie, or all bad.

    The values a form or API client posts ("gen:<position>", "side:<letter>", "tie",
    "all_bad") are read into a verdict in compare/judging/blind.py, nowhere else."""

    class Verdict(models.TextChoices):
        BETTER = "better", "One side is better"
        TIE = "tie", "Tie"
        ALL_BAD = "all_bad", "All bad"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="votes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="votes")
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    # The better side (a generation of this run) when the verdict is BETTER. CASCADE:
    # generations only go with their run, which takes its votes along; SET_NULL would
    # leave a "better" vote without a winner, which the constraint below forbids.
    winner = models.ForeignKey(Generation, null=True, blank=True, on_delete=models.CASCADE, related_name="wins")
    # Cast while the model names were still hidden from this voter.
    blind = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "user"], name="one_vote_per_user_per_run"),
            models.CheckConstraint(
                condition=models.Q(verdict="better", winner__isnull=False)
                | models.Q(verdict__in=["tie", "all_bad"], winner__isnull=True),
                name="vote_winner_exactly_when_better",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} → {self.winner.model_label if self.winner is not None else self.get_verdict_display()}"


class Reveal(models.Model):
    """When a viewer saw the model names of a run: by asking ("Show model names"), or by
    opening it with the names shown (the run page reports that with a POST once it has
    loaded: a GET writes nothing). Such a viewer's later votes on it are not blind, and
    the Judge queue never serves them the run (`RunQuerySet.judge_queue`)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="reveals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reveals")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "user"], name="one_reveal_per_user_per_run")]

    def __str__(self) -> str:
        return f"{self.user} saw the names of {self.run_id}"


class Rating(models.Model):
    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="ratings")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ratings")
    criterion = models.ForeignKey(Criterion, on_delete=models.CASCADE, related_name="ratings")
    stars = models.PositiveSmallIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["generation", "user", "criterion"], name="one_rating_per_criterion"),
            models.CheckConstraint(condition=models.Q(stars__gte=1, stars__lte=5), name="stars_1_to_5"),
        ]

    def __str__(self) -> str:
        return f"{self.user}: {self.stars}★ on {self.criterion}"


class Note(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="notes")
    generation = models.ForeignKey(Generation, null=True, blank=True, on_delete=models.SET_NULL, related_name="notes")
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.body[:60]


class ApiTokenQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A per-user API token. Only its SHA-256 is stored; the token is shown once."""

    PREFIX = "cmp_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=12)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(cls, user, name: str) -> tuple["ApiToken", str]:
        token = cls.PREFIX + secrets.token_urlsafe(32)
        row = cls.objects.create(user=user, name=name, digest=cls.hash(token), hint=token[:8])
        return row, token

    # "Last used" is shown to the minute (the tokens page): a client polling every 100 ms
    # writes it once a minute, not ten times a second (each write waits for SQLite's one writer).
    LAST_USED_EVERY = timedelta(minutes=1)

    @classmethod
    def authenticate(cls, token: str):
        row = _TOKEN.first(router.db_for_read(cls), cls.hash(token))
        if row is None or not row.user.is_active:
            return None
        now = timezone.now()
        if row.last_used_at is None or now - row.last_used_at >= cls.LAST_USED_EVERY:
            cls.objects.filter(pk=row.pk).update(last_used_at=now)
        return row.user


# Every API request looks its token up: compiled once (compare/precompiled.py).
_TOKEN = Precompiled(
    lambda digest: ApiToken.objects.active().select_related("user").filter(digest=digest), [("0" * 64, None)]
)


class ProviderCall(models.Model):
    """One request to a provider, for the per-model limits (compare/limits.py): calls
    started in the last minute count against requests per minute, calls not finished
    against generations in flight. Shared by every web and worker process."""

    model_key = models.CharField(max_length=100)
    generation = models.ForeignKey(Generation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["model_key", "started_at"]), models.Index(fields=["model_key", "finished_at"])]

    def __str__(self) -> str:
        return f"{self.model_key} at {self.started_at:%H:%M:%S}"


@receiver(post_save, sender=Generation)
@receiver(post_delete, sender=Generation)
def _generation_written(sender, instance: Generation, update_fields=None, **kwargs) -> None:
    """A side added, saved or deleted: its run's stored status follows (`Run.state`)."""
    if update_fields is None or "status" in update_fields:
        pending = kwargs.get("signal") is post_save and instance.status in Generation.PENDING
        Run.objects.refresh_state([instance.run_id], now_pending=pending)


# Compiling the state rule's UPDATE takes several times what running it does.
_STATE_UPDATE = Precompiled(_state_update, [(uuid.UUID("00000000-0000-4000-8000-0000057a7e00"), prep_of(Run, "id"))])
_PENDING_UPDATE = Precompiled(
    lambda run_id: _state_update(run_id, pending=True),
    [(uuid.UUID("00000000-0000-4000-8000-0000057a7e01"), prep_of(Run, "id"))],
)


# Models of this app that live in their own package; imported here so Django registers them.
from compare.suites.models import Suite as Suite  # noqa: E402
from compare.suites.models import SuiteCase as SuiteCase  # noqa: E402
from compare.suites.models import SuiteRun as SuiteRun  # noqa: E402
