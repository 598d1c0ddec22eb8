from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from compare import api, ratelimit, views, views_history, views_leaderboard, views_run, views_status

urlpatterns = [
    path("", views.new_run, name="new_run"),
    path("runs/options", views.run_options, name="run_options"),
    path("runs/", views_history.history, name="history"),
    path("runs/export.csv", views_history.history_csv, name="history_export_csv"),
    path("runs/export.json", views_history.history_json, name="history_export_json"),
    path("runs/<uuid:run_id>/", views_run.run_detail, name="run_detail"),
    path("runs/<uuid:run_id>/parts/<str:name>", views_run.run_fragment, name="run_fragment"),
    path("runs/<uuid:run_id>/vote", views_run.vote, name="vote"),
    path("runs/<uuid:run_id>/reveal", views_run.reveal, name="reveal"),
    path("runs/<uuid:run_id>/notes", views_run.add_note, name="add_note"),
    path("runs/<uuid:run_id>/notes/<int:note_id>/edit", views_run.edit_note, name="edit_note"),
    path("runs/<uuid:run_id>/notes/<int:note_id>/delete", views_run.delete_note, name="delete_note"),
    path("runs/<uuid:run_id>/tags", views_run.edit_tags, name="edit_tags"),
    path("runs/<uuid:run_id>/fork", views_run.fork, name="fork"),
    path("runs/<uuid:run_id>/export.zip", views_history.run_zip, name="run_export_zip"),
    path("runs/<uuid:run_id>/generations/<uuid:generation_id>", views_run.generation_pane, name="generation_pane"),
    path("runs/<uuid:run_id>/generations/<uuid:generation_id>/rate", views_run.rate_generation, name="rate"),
    path("runs/<uuid:run_id>/cancel", views_run.cancel, name="cancel_run"),
    path("runs/<uuid:run_id>/generations/<uuid:generation_id>/cancel", views_run.cancel, name="cancel_generation"),
    path("runs/<uuid:run_id>/generations/<uuid:generation_id>/retry", views_run.retry, name="retry_generation"),
    path("judge", views_run.judge_next, name="judge_next"),
    path("leaderboard", views_leaderboard.leaderboard, name="leaderboard"),
    path("leaderboard.csv", views_leaderboard.leaderboard_csv, name="leaderboard_csv"),
    path("leaderboard.json", views_leaderboard.leaderboard_json, name="leaderboard_json"),
    path("scorecard", views_leaderboard.scorecard, name="scorecard"),
    path("runs/<uuid:run_id>/images/<str:sha256>", views.image_view, name="image_view"),
    path("images/<str:sha256>", views.image_file, name="image_file"),
    path("images/<str:sha256>/thumbnail", views.image_thumbnail, name="image_thumbnail"),
    path("references/<int:reference_id>", views.reference_file, name="reference_file"),
    path("references/<int:reference_id>/thumbnail", views.reference_thumbnail, name="reference_thumbnail"),
    path("settings/tokens", views.tokens, name="tokens"),
    path("status", views_status.status, name="status"),
    path("api/runs", api.runs, name="api_runs"),
    path("api/runs/<str:run_id>", api.run_detail, name="api_run_detail"),
    re_path(r"^api/", api.not_found),
    path("login/", ratelimit.login_view, name="login"),  # refuses after repeated failures (429)
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
if settings.COMPARE_SIMULATOR_ENABLED:
    urlpatterns.append(path("sim/", include("compare.simulator.urls")))
