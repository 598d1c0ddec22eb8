from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from compare import api, views, views_status

urlpatterns = [
    path("", views.new_run, name="new_run"),
    path("runs/options", views.run_options, name="run_options"),
    path("runs/", views.history, name="history"),
    path("runs/<uuid:run_id>/", views.run_detail, name="run_detail"),
    path("runs/<uuid:run_id>/parts/<str:name>", views.run_fragment, name="run_fragment"),
    path("runs/<uuid:run_id>/vote", views.vote, name="vote"),
    path("runs/<uuid:run_id>/notes", views.add_note, name="add_note"),
    path("runs/<uuid:run_id>/generations/<uuid:generation_id>", views.generation_pane, name="generation_pane"),
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
    path("login/", auth_views.LoginView.as_view(template_name="login.html", redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
if settings.COMPARE_SIMULATOR_ENABLED:
    urlpatterns.append(path("sim/", include("compare.simulator.urls")))
