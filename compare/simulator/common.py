"""Pieces both simulated providers share: auth, JSON replies, latency, streaming."""

import base64
import binascii
import io
import json
import secrets
import threading
import time
from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from PIL import Image, UnidentifiedImageError

from compare import registry
from compare.simulator import faults

DEFAULT_LATENCY = 3.0  # seconds, for model ids the registry doesn't know
# Real bodies can be big (14 reference images); read past Django's form limit up to this.
MAX_BODY = 64 * 1024 * 1024


# A key whose value starts with this is "not valid": how a test (or someone trying the
# error screens) points a registry entry at the simulator with a bad key.
BAD_KEY_PREFIX = "invalid"


def credential(request) -> str:
    """Any non-empty key will do; real keys must never be needed here."""
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer ") and auth[7:].strip():
        return auth[7:].strip()
    return (request.headers.get("x-goog-api-key") or request.GET.get("key") or "").strip()


def key_problem(request) -> str | None:
    """What is wrong with the request's key: "missing" (none at all), "invalid" (it starts
    with BAD_KEY_PREFIX, any case) or None: every other key is accepted, so real keys are
    never needed."""
    key = credential(request)
    if not key:
        return "missing"
    return "invalid" if key.lower().startswith(BAD_KEY_PREFIX) else None


class InFlight:
    """How many simulated calls are being answered right now (a streamed reply until its
    first byte), and the most at once since the last reset: what a burst test or benchmark
    reads to see the app's concurrency (GET /sim/stats, compare/simulator/stats.py)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self) -> "InFlight":
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self.now -= 1

    def reset(self) -> None:
        with self._lock:
            self.peak = self.now


IN_FLIGHT = InFlight()


def simulator_view(unauthorized):
    """Decorator: open to the world (no login, no CSRF) but demanding a credential.

    `unauthorized(request, problem)` builds the provider's own reply for a missing or
    not-valid key (`key_problem`), so clients see the error shape they would see from
    the real API. The moment the request arrived is kept on it: a reply's latency
    counts from there (see `Pacer`).
    """

    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            request.sim_started = time.monotonic()
            problem = key_problem(request)
            if problem is not None:
                return unauthorized(request, problem)
            with IN_FLIGHT:
                return view(request, *args, **kwargs)

        return csrf_exempt(login_not_required(wrapper))

    return decorate


def json_response(body, status: int = 200, headers: dict | None = None) -> HttpResponse:
    response = HttpResponse(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status=status,
        content_type="application/json; charset=utf-8",
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def raw_body(request) -> bytes:
    """The request body without Django's DATA_UPLOAD_MAX_MEMORY_SIZE check (see MAX_BODY)."""
    if not hasattr(request, "_sim_body"):
        request._sim_body = request.read(MAX_BODY + 1)
    return request._sim_body


def body_too_big(request) -> bool:
    return len(raw_body(request)) > MAX_BODY


def sse_response(frames) -> StreamingHttpResponse:
    response = StreamingHttpResponse(frames, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # keep proxies from holding previews back
    return response


def truncated_response(body: bytes, status: int = 200, content_type="application/json; charset=utf-8"):
    """Half a body, then the connection ends: what a dropped upstream connection looks like.

    Streamed without a Content-Length, so the server closes the connection after it.
    """
    return StreamingHttpResponse(iter([body[: max(1, len(body) // 2)]]), status=status, content_type=content_type)


# Ids the real providers have shut down (their deprecation notices). The simulator answers
# for them as the providers do (404), even when a registry still names them.
RETIRED_IDS = frozenset(
    {
        "gemini-3-pro-image-preview",
        "gemini-3.1-flash-image-preview",
        "gemini-3.1-flash-image",
        "gpt-image-1",
        "dall-e-2",
        "dall-e-3",
    }
)


def configured_models() -> list:
    """The registry's models; a broken registry is reported at start-up, not by failing the simulator."""
    try:
        return list(registry.registry().values())
    except ImproperlyConfigured:
        return []


def model_latency(model_id: str) -> float:
    """The registry's simulated_latency for this model id, scaled by COMPARE_SIMULATOR_LATENCY."""
    seconds = DEFAULT_LATENCY
    for model in configured_models():
        if model.model_id == model_id:
            seconds = model.simulated_latency
            break
    return seconds * settings.COMPARE_SIMULATOR_LATENCY


def latency_for(request, protocol: str, model_id: str, prompt: str) -> float:
    override = faults.latency_override(protocol, prompt, request.headers.get("X-Simulator-Latency"))
    return model_latency(model_id) if override is None else override


class Pacer:
    """The simulated latency, counted from the request's arrival: the picture is drawn
    first and only the rest of the latency is slept, so a reply takes about the latency,
    not the latency plus the drawing. `until(f)` sleeps until fraction f of it has passed
    (streamed replies send their parts along the way)."""

    def __init__(self, request, latency: float) -> None:
        self.started: float = getattr(request, "sim_started", None) or time.monotonic()
        self.latency = latency

    def until(self, fraction: float = 1.0) -> bool:
        """False if woken early by faults.release_sleepers()."""
        return faults.sleep(self.started + self.latency * fraction - time.monotonic())


def registry_model_ids(protocol: str) -> set[str]:
    """Model ids the app is configured to send to this protocol: the simulator must know them all."""
    return {m.model_id for m in configured_models() if m.protocol == protocol}


def model_label(model_id: str) -> str:
    """The small caption drawn into a simulated image. It names no model: a real
    provider does not sign its pictures, and blind judging must not be spoiled."""
    return "simulated"


def decode_image(data: bytes) -> Image.Image | None:
    """A Pillow image from uploaded bytes, or None when they are not an image."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        return image
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def b64decode(value: str) -> bytes | None:
    """Standard or URL-safe base64 (google-genai sends the URL-safe alphabet), padding optional."""
    try:
        value = value.strip().replace("-", "+").replace("_", "/")
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=False)
    except (binascii.Error, ValueError, TypeError):
        return None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def request_id(prefix: str = "req_") -> str:
    return prefix + secrets.token_hex(16)
