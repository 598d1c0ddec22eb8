"""The URLs of the simulator's own process (`manage.py simulator`): the simulator only,
at the same /sim/ prefix as on the web server (compare/urls.py)."""

from django.urls import include, path

urlpatterns = [path("sim/", include("compare.simulator.urls"))]
