"""Suite, SuiteCase and SuiteRun (imported by compare/models.py, app label "compare")."""

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

# What a case is, wherever it is stored or exchanged (compare/suites/io.py `CaseData`, `SuiteCase.snapshot`).
CASE_FIELDS = ("title", "prompt", "options", "tags", "expectations")


class Suite(models.Model):
    """A named list of prompt cases. Each edit of its cases raises `version`; a suite
    run keeps a snapshot of the cases it ran, so old results stay readable."""

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1)
    # Shipped with compare (the reference suite): restored by `migrate`, not deletable in the browser.
    builtin = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="suites"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("suite_detail", args=[self.pk])


class SuiteCase(models.Model):
    """One prompt of a suite: the prompt, its options (the keys of Run.options), its
    tags and the strings the text check expects (empty: the prompt's quoted strings)."""

    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="cases")
    position = models.PositiveSmallIntegerField(default=0)
    title = models.CharField(max_length=120, blank=True)
    prompt = models.TextField()
    options = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    expectations = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["suite", "position", "pk"]

    def __str__(self) -> str:
        return self.title or self.prompt[:60]

    def snapshot(self) -> dict:
        """What a suite run keeps of this case (SuiteRun.cases)."""
        return {name: getattr(self, name) for name in CASE_FIELDS}


class SuiteRun(models.Model):
    """Cases × models × samples generations: one Run per case and sample (`runs`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    suite = models.ForeignKey(Suite, null=True, blank=True, on_delete=models.SET_NULL, related_name="suite_runs")
    # Snapshots: the suite may be edited or deleted later.
    suite_name = models.CharField(max_length=120)
    suite_version = models.PositiveIntegerField(default=1)
    cases = models.JSONField(default=list)
    model_keys = models.JSONField(default=list)
    samples = models.PositiveSmallIntegerField(default=1)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="suite_runs")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    estimated_cost_usd = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.suite_name} v{self.suite_version} ({self.created_at:%Y-%m-%d %H:%M})"

    def get_absolute_url(self) -> str:
        return reverse("suite_run_detail", args=[self.pk])
