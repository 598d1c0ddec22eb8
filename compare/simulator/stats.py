"""GET /sim/stats: what the simulator is doing, for benchmarks and for anyone curious
how many calls the app has in flight: calls being answered now and the most at once
(POST resets that peak), and its cache of drawn pictures (compare/simulator/render.py)."""

from django.contrib.auth.decorators import login_not_required
from django.views.decorators.csrf import csrf_exempt

from compare.simulator.common import IN_FLIGHT, credential, json_response
from compare.simulator.render import CACHE


def snapshot() -> dict:
    return {
        "in_flight": IN_FLIGHT.now,
        "peak_in_flight": IN_FLIGHT.peak,
        "renders": CACHE.renders,
        "cache_hits": CACHE.hits,
        "cache_bytes": CACHE.size,
    }


@csrf_exempt
@login_not_required
def stats(request):
    """Not counted as a call in flight itself; any API key will do, as for the simulated APIs."""
    if not credential(request):
        return json_response({"error": "Send any API key (Authorization: Bearer …)."}, 401)
    if request.method == "POST":
        IN_FLIGHT.reset()
    elif request.method != "GET":
        return json_response({"error": "GET or POST."}, 405)
    return json_response(snapshot())
