"""The admin: team settings, criteria and tags are edited here; runs and tokens
can be inspected (and tokens revoked)."""

from collections.abc import Mapping
from typing import Any, ClassVar

from django import forms
from django.contrib import admin
from django.db import models
from django.utils import timezone

from compare.models import ApiToken, Criterion, Generation, Run, Tag, TeamSettings
from compare.suites import edits, io
from compare.suites.models import Suite, SuiteCase, SuiteRun
from compare.text import TextField


@admin.register(TeamSettings)
class TeamSettingsAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "blind_by_default",
        "leaderboard_min_votes",
        "daily_budget_usd",
        "max_in_flight",
        "rerun_interrupted",
    ]

    def has_add_permission(self, request) -> bool:
        return not TeamSettings.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class StoredTextMixin:
    """Admin forms clean text like every other form (compare/text.py): valid Unicode,
    NFC, no control characters, not invisible-only."""

    formfield_overrides: ClassVar[Mapping[type[models.Field], Mapping[str, Any]]] = {
        models.CharField: {"form_class": TextField},
        models.TextField: {"form_class": TextField, "widget": forms.Textarea},
    }


@admin.register(Criterion)
class CriterionAdmin(StoredTextMixin, admin.ModelAdmin):
    list_display = ["name", "position", "active", "is_usability", "description"]
    list_editable = ["position", "active", "is_usability"]


@admin.register(Tag)
class TagAdmin(StoredTextMixin, admin.ModelAdmin):
    search_fields = ["name"]


class GenerationInline(admin.TabularInline):
    model = Generation
    fields = readonly_fields = ("position", "model_key", "status", "attempts", "latency_ms", "cost_usd", "error_kind")
    extra = 0
    can_delete = False


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["short_id", "prompt", "author", "created_at", "blind"]
    list_filter = ["blind", "tags"]
    search_fields = ["prompt"]
    readonly_fields = ["author", "prompt", "options", "created_at", "parent"]
    inlines = [GenerationInline]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "hint", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["user", "name", "digest", "hint", "created_at", "last_used_at"]
    actions = ["revoke"]

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset) -> None:
        queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())

    def has_add_permission(self, request) -> bool:
        return False  # tokens are issued on the API tokens page, where the secret is shown once


class SuiteCaseForm(forms.ModelForm):
    """A case as the browser and an imported file are checked (compare/suites/io.py)."""

    class Meta:
        model = SuiteCase
        fields = ["position", "title", "prompt", "tags", "options", "expectations"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        fields = ("title", "prompt", "tags", "options", "expectations")
        case, problems = io.clean_case({k: data[k] for k in fields if data.get(k) is not None}, "This case")
        for problem in problems:
            self.add_error(None, problem)
        if case is not None:
            data.update(case.fields())
        return data


class SuiteCaseInline(admin.StackedInline):
    model = SuiteCase
    form = SuiteCaseForm
    extra = 0

    def has_change_permission(self, request, obj=None) -> bool:
        return not (obj and obj.builtin) and super().has_change_permission(request, obj)

    def has_add_permission(self, request, obj=None) -> bool:
        return not (obj and obj.builtin) and super().has_add_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return not (obj and obj.builtin) and super().has_delete_permission(request, obj)


@admin.register(Suite)
class SuiteAdmin(StoredTextMixin, admin.ModelAdmin):
    """Each change of the cases raises the version (compare/suites/edits.py); the built-in
    suite is read-only here as in the browser (its migration restores it)."""

    list_display = ["name", "version", "builtin", "created_by", "updated_at"]
    search_fields = ["name"]
    readonly_fields = ["version", "builtin", "created_at", "updated_at"]
    fields = ["name", "description", "version", "builtin", "created_by", "created_at", "updated_at"]
    inlines = [SuiteCaseInline]

    def has_change_permission(self, request, obj=None) -> bool:
        return not (obj and obj.builtin) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return not (obj and obj.builtin) and super().has_delete_permission(request, obj)

    def save_related(self, request, form, formsets, change) -> None:
        def cases() -> list[dict[str, Any]]:
            return [case.snapshot() for case in form.instance.cases.order_by("position", "pk")]

        before = cases()
        super().save_related(request, form, formsets, change)
        if change and cases() != before:
            edits.bump_version(form.instance)


@admin.register(SuiteRun)
class SuiteRunAdmin(admin.ModelAdmin):
    list_display = ["suite_name", "suite_version", "author", "samples", "created_at", "cancelled_at"]
    list_filter = ["suite_name"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
