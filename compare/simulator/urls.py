"""Routes of the provider simulator, mounted at /sim/ by compare.urls when enabled, and
served alone at the same prefix by the simulator's own process (`manage.py simulator`,
which `manage.py serve` starts: compare/simulator/management/commands/simulator.py).

The prefixes mirror the real base URLs, so a client only swaps the host part:
    https://api.openai.com/v1                         → /sim/openai/v1
    https://generativelanguage.googleapis.com/v1beta  → /sim/gemini/v1beta   (v1 also answers)
"""

from django.urls import path, re_path

from compare.simulator import stats
from compare.simulator.gemini import views as views_gemini
from compare.simulator.openai import views as views_openai

app_name = "simulator"

urlpatterns = [
    path("stats", stats.stats, name="stats"),
    path("openai/v1/images/generations", views_openai.generations, name="openai-generations"),
    path("openai/v1/images/edits", views_openai.edits, name="openai-edits"),
    path("openai/v1/models", views_openai.models, name="openai-models"),
    path("openai/v1/models/<str:model_id>", views_openai.model_detail, name="openai-model"),
    re_path(r"^openai/(?P<rest>.*)$", views_openai.not_found),
    # Gemini puts the method after a colon: models/gemini-3-pro-image:generateContent
    re_path(
        r"^gemini/(?P<version>v1beta|v1)/models/(?P<model_id>[^/:]+):(?P<method>[A-Za-z]+)$",
        views_gemini.model_action,
        name="gemini-action",
    ),
    re_path(r"^gemini/(?P<version>v1beta|v1)/models/?$", views_gemini.models, name="gemini-models"),
    re_path(
        r"^gemini/(?P<version>v1beta|v1)/models/(?P<model_id>[^/:]+)$", views_gemini.model_detail, name="gemini-model"
    ),
    re_path(r"^gemini/(?P<rest>.*)$", views_gemini.not_found),
]
