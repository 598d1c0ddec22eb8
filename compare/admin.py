"""The admin: team settings, criteria and tags are edited here; runs and tokens
can be inspected (and tokens revoked)."""

from django.contrib import admin
from django.utils import timezone

from compare.models import ApiToken, Criterion, Generation, Run, Tag, TeamSettings


@admin.register(TeamSettings)
class TeamSettingsAdmin(admin.ModelAdmin):
    list_display = ["__str__", "blind_by_default", "leaderboard_min_votes", "daily_budget_usd", "max_in_flight"]

    def has_add_permission(self, request) -> bool:
        return not TeamSettings.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Criterion)
class CriterionAdmin(admin.ModelAdmin):
    list_display = ["name", "position", "active", "is_usability", "description"]
    list_editable = ["position", "active", "is_usability"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


class GenerationInline(admin.TabularInline):
    model = Generation
    fields = ["position", "model_key", "status", "attempts", "latency_ms", "cost_usd", "error_kind"]
    readonly_fields = fields
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
