"""The domain: Run, Generation, Image, Vote, Note, ApiToken.

The Generation row is the record of every provider call: what was asked, what was
sent, what came back, how long it took and what it cost.
"""

import hashlib
import secrets
import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from compare.registry import get_model


class RunQuerySet(models.QuerySet):
    def with_vote_counts(self):
        return self.annotate(vote_count=Count("votes", distinct=True))

    def for_history(self):
        return (
            self.select_related("author")
            .prefetch_related("generations__images", "votes")
            .order_by("-created_at")
        )


class Run(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="runs")
    prompt = models.TextField()
    # The canonical options as the user chose them (aspect, resolution, quality, …).
    options = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.prompt[:60]

    def get_absolute_url(self) -> str:
        return reverse("run_detail", args=[self.id])

    @property
    def short_id(self) -> str:
        return str(self.id)[:8]

    def ordered_generations(self):
        return sorted(self.generations.all(), key=lambda g: g.position)

    @property
    def status(self) -> str:
        statuses = {g.status for g in self.generations.all()}
        if not statuses:
            return "empty"
        if statuses & {Generation.Status.QUEUED, Generation.Status.RUNNING}:
            return "running"
        if statuses == {Generation.Status.SUCCEEDED}:
            return "done"
        if Generation.Status.SUCCEEDED in statuses:
            return "partial"
        return "failed"

    @property
    def is_finished(self) -> bool:
        return self.status not in {"running", "empty"}

    def vote_tally(self) -> list[tuple[str, int]]:
        """[(label, count)] in a stable order, for the run page and the history."""
        counts: dict[str, int] = {}
        for vote in self.votes.all():
            counts[vote.choice] = counts.get(vote.choice, 0) + 1
        return [(label, counts.get(key, 0)) for key, label in self.vote_choices()]

    def vote_choices(self) -> list[tuple[str, str]]:
        gens = self.ordered_generations()
        if len(gens) == 2:
            names = ["Left better", "Right better"]
        else:
            names = [f"{g.model_label} best" for g in gens]
        choices = [(f"gen:{g.position}", name) for g, name in zip(gens, names, strict=True)]
        choices.append((Vote.TIE, "Tie"))
        choices.append((Vote.ALL_BAD, "Both bad" if len(gens) == 2 else "All bad"))
        return choices

    @property
    def total_cost(self) -> Decimal | None:
        costs = [g.cost_usd for g in self.generations.all() if g.cost_usd is not None]
        return sum(costs, Decimal("0")) if costs else None


class GenerationQuerySet(models.QuerySet):
    def pending(self):
        return self.filter(status__in=[Generation.Status.QUEUED, Generation.Status.RUNNING])


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
}


class Generation(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Done"
        FAILED = "failed", "Failed"
        REFUSED = "refused", "Refused"
        CANCELLED = "cancelled", "Cancelled"

    TERMINAL = {Status.SUCCEEDED, Status.FAILED, Status.REFUSED, Status.CANCELLED}

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="generations")
    position = models.PositiveSmallIntegerField()
    model_key = models.CharField(max_length=100)
    # Snapshot of the registry entry at submit time, so history survives registry edits.
    model_label = models.CharField(max_length=200)
    model_id = models.CharField(max_length=200)
    simulated = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    attempt_log = models.JSONField(default=list, blank=True)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    estimated_cost_usd = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    params_sent = models.JSONField(default=dict, blank=True)
    params_echoed = models.JSONField(default=dict, blank=True)
    text = models.TextField(blank=True)
    grounding = models.JSONField(null=True, blank=True)
    error_kind = models.CharField(max_length=32, blank=True)
    error_message = models.TextField(blank=True)

    objects = GenerationQuerySet.as_manager()

    class Meta:
        ordering = ["run", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "position"], name="unique_generation_position")]

    def __str__(self) -> str:
        return f"{self.model_key} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def model(self):
        return get_model(self.model_key)

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

    def final_images(self):
        return [img for img in self.images.all() if not img.is_partial]

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

    class Meta:
        abstract = True

    @property
    def mime_type(self) -> str:
        return {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}.get(self.format, "application/octet-stream")


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
    """An input image of a run: a reference image, or the mask for the first one.

    Uploads are verified and re-encoded before they get here; the file is
    content-addressed like every output image."""

    class Kind(models.TextChoices):
        REFERENCE = "reference", "Reference"
        MASK = "mask", "Mask"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="references")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.REFERENCE)
    position = models.PositiveSmallIntegerField(default=0)
    name = models.CharField(max_length=200, blank=True)
    # Set when the reference is an output image of an earlier run.
    source_image = models.ForeignKey("Image", null=True, blank=True, on_delete=models.SET_NULL, related_name="reused_as")

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
    TIE = "tie"
    ALL_BAD = "all_bad"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="votes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="votes")
    # "gen:<position>" for a winner, or "tie" / "all_bad".
    choice = models.CharField(max_length=20)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "user"], name="one_vote_per_user_per_run")]

    def __str__(self) -> str:
        return f"{self.user} → {self.choice}"


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

    @classmethod
    def authenticate(cls, token: str):
        row = cls.objects.active().select_related("user").filter(digest=cls.hash(token)).first()
        if row is None or not row.user.is_active:
            return None
        cls.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
        return row.user

