from axes.decorators import axes_dispatch
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from compare.api import suites as api_suites
from compare.api import views as api
from compare.views import files, history, leaderboard, new_run, pair, run, status, suite_runs, suites, tokens

urlpatterns = [
    path("", new_run.new_run, name="new_run"),
    path("runs/options", new_run.run_options, name="run_options"),
    path("runs/", history.history, name="history"),
    path("runs/chart", history.history_chart, name="history_chart"),
    path("runs/export.csv", history.history_csv, name="history_export_csv"),
    path("runs/export.json", history.history_json, name="history_export_json"),
    path("runs/<uuid:run_id>/", run.run_detail, name="run_detail"),
    path("runs/<uuid:run_id>/parts/<str:name>", run.run_fragment, name="run_fragment"),
    path("runs/<uuid:run_id>/updates", run.run_updates, name="run_updates"),
    path("runs/<uuid:run_id>/vote", run.vote, name="vote"),
    path("runs/<uuid:run_id>/reveal", run.reveal, name="reveal"),
    path("runs/<uuid:run_id>/seen", run.seen, name="seen"),
    path("runs/<uuid:run_id>/notes", run.add_note, name="add_note"),
    path("runs/<uuid:run_id>/notes/<int:note_id>/edit", run.edit_note, name="edit_note"),
    path("runs/<uuid:run_id>/notes/<int:note_id>/delete", run.delete_note, name="delete_note"),
    path("runs/<uuid:run_id>/tags", run.edit_tags, name="edit_tags"),
    path("runs/<uuid:run_id>/fork", run.fork, name="fork"),
    path("runs/<uuid:run_id>/export.zip", history.run_zip, name="run_export_zip"),
    path("runs/<uuid:run_id>/generations/<uuid:generation_id>", run.generation_pane, name="generation_pane"),
    path("runs/<uuid:run_id>/generations/<uuid:generation_id>/rate", run.rate_generation, name="rate"),
    path("runs/<uuid:run_id>/cancel", run.cancel, name="cancel_run"),
    path("runs/<uuid:run_id>/generations/<uuid:generation_id>/cancel", run.cancel, name="cancel_generation"),
    path("runs/<uuid:run_id>/generations/<uuid:generation_id>/retry", run.retry, name="retry_generation"),
    path(
        "runs/<uuid:run_id>/generations/<uuid:generation_id>/search/<int:index>",
        files.search_suggestions,
        name="search_suggestions",
    ),
    path("judge", run.judge_next, name="judge_next"),
    path("suites/", suites.suites, name="suites"),
    path("suites/new", suites.suite_create, name="suite_create"),
    path("suites/import", suites.suite_import, name="suite_import"),
    path("suites/import/confirm", suites.suite_import_confirm, name="suite_import_confirm"),
    path("suites/<int:suite_id>/", suites.suite_detail, name="suite_detail"),
    path("suites/<int:suite_id>/edit", suites.suite_update, name="suite_update"),
    path("suites/<int:suite_id>/delete", suites.suite_delete, name="suite_delete"),
    path("suites/<int:suite_id>/duplicate", suites.suite_duplicate, name="suite_duplicate"),
    path("suites/<int:suite_id>/export.json", suites.suite_export, {"fmt": "json"}, name="suite_export_json"),
    path("suites/<int:suite_id>/export.yaml", suites.suite_export, {"fmt": "yaml"}, name="suite_export_yaml"),
    path("suites/<int:suite_id>/estimate", suites.suite_estimate, name="suite_estimate"),
    path("suites/<int:suite_id>/run", suites.suite_run_start, name="suite_run_start"),
    path("suites/<int:suite_id>/cases/add", suites.case_add, name="suite_case_add"),
    path("suites/<int:suite_id>/cases/<int:case_id>/edit", suites.case_edit, name="suite_case_edit"),
    path("suites/<int:suite_id>/cases/<int:case_id>/delete", suites.case_delete, name="suite_case_delete"),
    path("suites/<int:suite_id>/cases/<int:case_id>/move", suites.case_move, name="suite_case_move"),
    path("suite-runs/compare", suite_runs.suite_run_compare, name="suite_run_compare"),
    path("suite-runs/<uuid:suite_run_id>/", suite_runs.suite_run_detail, name="suite_run_detail"),
    path("suite-runs/<uuid:suite_run_id>/parts/<str:name>", suite_runs.suite_run_fragment, name="suite_run_fragment"),
    path("suite-runs/<uuid:suite_run_id>/cancel", suite_runs.suite_run_cancel, name="suite_run_cancel"),
    path("leaderboard", leaderboard.leaderboard, name="leaderboard"),
    path("leaderboard.csv", leaderboard.leaderboard_csv, name="leaderboard_csv"),
    path("leaderboard.json", leaderboard.leaderboard_json, name="leaderboard_json"),
    path("scorecard", leaderboard.scorecard, name="scorecard"),
    path("runs/<uuid:run_id>/images/<str:sha256>", files.image_view, name="image_view"),
    path("runs/<uuid:run_id>/sides/<str:letter>/<int:number>", files.blind_image, name="blind_image"),
    path("runs/<uuid:run_id>/sides/<str:letter>/<int:number>/thumbnail", files.blind_thumbnail, name="blind_thumbnail"),
    path("compare/", pair.compare_images, name="compare_images"),
    path("images/<str:sha256>", files.image_file, name="image_file"),
    path("images/<str:sha256>/thumbnail", files.image_thumbnail, name="image_thumbnail"),
    path("references/<int:reference_id>", files.reference_file, name="reference_file"),
    path("references/<int:reference_id>/thumbnail", files.reference_thumbnail, name="reference_thumbnail"),
    path("settings/tokens", tokens.tokens, name="tokens"),
    path("status", status.status, name="status"),
    path("api/runs", api.runs, name="api_runs"),
    path("api/runs/<str:run_id>", api.run_detail, name="api_run_detail"),
    path("api/suites", api_suites.suites, name="api_suites"),
    path("api/suites/<str:suite_id>/runs", api_suites.suite_runs, name="api_suite_runs"),
    path("api/suite-runs/<str:suite_run_id>", api_suites.suite_run_detail, name="api_suite_run_detail"),
    path("api/suite-runs/<str:suite_run_id>/cancel", api_suites.suite_run_cancel, name="api_suite_run_cancel"),
    path(
        "api/suite-runs/<str:suite_run_id>/compare/<str:other_id>",
        api_suites.suite_run_compare,
        name="api_suite_run_compare",
    ),
    re_path(r"^api/", api.not_found),
    # A locked-out username and address get the lockout page (429) before the form is looked at
    # (compare/lockout.py); the admin's login is held to the same limit by the auth backend.
    path(
        "login/",
        axes_dispatch(auth_views.LoginView.as_view(template_name="login.html", redirect_authenticated_user=True)),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
if settings.COMPARE_SIMULATOR_ENABLED:
    urlpatterns.append(path("sim/", include("compare.simulator.urls")))
