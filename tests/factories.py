"""Builders the tests share: users, runs with their generations, stored images, image
bytes and uploads, and a recorder that fakes a provider at the HTTP boundary.

Fixtures that use them (`user`, `other_user`, `auth_client`, `simulator`, …) live in
tests/conftest.py. Votes are made in the tests themselves, with `Vote.objects.create`."""

import io
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile, UploadedFile
from django.utils import timezone
from django.utils.datastructures import MultiValueDict
from PIL import Image as PILImage

from compare.forms import RunForm
from compare.images import store as store_image
from compare.models import Generation, Image, Run, Tag
from compare.runs import create_run

# The two flagships as the form and the API name them.
BOTH = ["gpt-image-2", "gemini-3-pro-image"]
# Models as stored on a generation: (model_key, model_label, model_id).
GPT = ("gpt-image-2", "GPT Image 2", "gpt-image-2-2026")
NANO = ("gemini-3-pro-image", "Nano Banana Pro", "gemini-3-pro-image-preview")
MINI = ("gpt-image-1-mini", "GPT Image 1 mini", "gpt-image-1-mini")

# Task backends: generations stay queued (nothing calls a provider), or run before the request returns.
DUMMY_TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
IMMEDIATE_TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}


# Random identifiers a page or a reply carries: ids, CSRF tokens, hashes and cache keys.
_RANDOM = re.compile(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}|[A-Za-z0-9]{16,}")


def without_random_ids(text: str) -> str:
    """`text` with each id, token or hash replaced by a mark: a test that looks for a word
    that must not show ("KB", "6100") then cannot fail when a CSRF token happens to hold it."""
    return _RANDOM.sub("<id>", text)


# --- users -------------------------------------------------------------------------------


def password_for(username: str) -> str:
    """Every test user's password: `pw-dana-123` for dana (tests log in with it)."""
    return f"pw-{username}-123"


def make_user(username: str, **fields) -> User:
    """A user whose password is `password_for(username)`; `is_staff=True` and friends pass through."""
    return User.objects.create_user(username, password=password_for(username), **fields)


# --- image bytes ---------------------------------------------------------------------------


def image_bytes(
    color: str | tuple[int, ...] = "red",
    size: tuple[int, int] = (16, 16),
    *,
    mode: str = "RGB",
    fmt: str = "PNG",
    **save,
) -> bytes:
    """A plain one-colour image encoded as `fmt`; `save` goes to Pillow (pnginfo=, exif=, quality=, …)."""
    buf = io.BytesIO()
    PILImage.new(mode, size, color).save(buf, fmt, **save)
    return buf.getvalue()


def png(color: str | tuple[int, ...] = "red", size: tuple[int, int] = (16, 16), *, mode: str = "RGB", **save) -> bytes:
    """A one-colour PNG (mode="RGBA" with an alpha in `color` for transparency)."""
    return image_bytes(color, size, mode=mode, fmt="PNG", **save)


def upload(
    name: str = "ref.png",
    color: str | tuple[int, ...] = (200, 30, 30),
    size: tuple[int, int] = (256, 256),
    *,
    mode: str = "RGB",
    fmt: str = "PNG",
    **save,
) -> SimpleUploadedFile:
    """An image file as a browser uploads it, its content type saying what it is."""
    data = image_bytes(color, size, mode=mode, fmt=fmt, **save)
    return SimpleUploadedFile(name, data, content_type=f"image/{fmt.lower()}")


# --- runs, generations, images ----------------------------------------------------------------


def make_run(
    author,
    prompt: str = "a poster",
    status: str | Sequence[str] = "succeeded",
    models: Sequence[tuple[str, str, str]] = (GPT, NANO),
    *,
    blind: bool = False,
    options: dict | None = None,
    tags: Iterable[str] = (),
    created_at: datetime | None = None,
    days_ago: float = 0,
    images: int = 0,
    cost_usd: Decimal | str | None = "0.04",
    estimated_cost_usd: Decimal | str | None = "0.05",
    **generation_fields,
) -> Run:
    """A run straight in the database, no form, no task, no provider: one generation per
    model in `models`, each with `status` (one for every side, or one per side), and
    `images` stored PNGs per generation. A blind run shows its sides in reverse order.
    `generation_fields` (latency_ms=, started_at=, …) go to every generation."""
    statuses = [status] * len(models) if isinstance(status, str) else list(status)
    assert len(statuses) == len(models), "one status per model"
    run = Run.objects.create(
        author=author,
        prompt=prompt,
        blind=blind,
        options={"n": 1, **(options or {})},
        created_at=created_at or timezone.now() - timedelta(days=days_ago),
    )
    for position, ((key, label, model_id), side_status) in enumerate(zip(models, statuses, strict=True)):
        gen = Generation.objects.create(
            run=run,
            position=position,
            blind_position=len(models) - 1 - position if blind else position,
            model_key=key,
            model_label=label,
            model_id=model_id,
            status=side_status,
            cost_usd=cost_usd,
            estimated_cost_usd=estimated_cost_usd,
            **generation_fields,
        )
        for index in range(images):
            add_image(gen, index=index)
    if tags:
        run.tags.set(Tag.objects.get_or_create(name=name)[0] for name in tags)
    run.refresh_from_db(fields=["state"])  # the stored status its generations gave it
    return run


def new_run(
    author,
    prompt: str = "a red fox",
    models: Sequence[str] = BOTH,
    *,
    references: Sequence[bytes] = (),
    created_at: datetime | None = None,
    **fields,
) -> Run:
    """A run as the new-comparison form makes it: checked by RunForm (`fields` are more
    form fields), created by create_run with its estimates, generations queued for the
    task backend (set DUMMY_TASKS to keep them there)."""
    files: MultiValueDict[str, UploadedFile] = MultiValueDict(
        {"references": [SimpleUploadedFile(f"ref{i}.png", data, "image/png") for i, data in enumerate(references)]}
    )
    form = RunForm({"prompt": prompt, "models": list(models), **fields}, files)
    assert form.is_valid(), form.errors
    run = create_run(author, **form.run_fields())
    if created_at is not None:
        Run.objects.filter(pk=run.pk).update(created_at=created_at)
        run.created_at = created_at
    return run


def add_image(generation: Generation, data: bytes | None = None, index: int = 0, **fields) -> Image:
    """An output image of `generation`, stored like a provider's (file and thumbnail written)."""
    return Image.objects.create(generation=generation, index=index, **store_image(data or png()), **fields)


def succeed(generation: Generation, *outputs: bytes) -> Generation:
    """Finish `generation` the way a task does on success: its images stored, then succeeded."""
    for index, data in enumerate(outputs):
        add_image(generation, data, index=index)
    generation.status, generation.finished_at = Generation.Status.SUCCEEDED, timezone.now()
    generation.save()
    return generation


# --- through the new-comparison form --------------------------------------------------------


def form_data(prompt: str = "a poster", models: Sequence[str] = BOTH, **fields) -> dict:
    """What the new-comparison form posts: `models` at 1:1 and 1K, plus any other `fields`."""
    return {"prompt": prompt, "models": list(models), "aspect_ratio": "1:1", "resolution": "1K", **fields}


def submit_and_wait(
    client, prompt: str = "a poster", models: Sequence[str] = BOTH, *, timeout: float = 30.0, **fields
) -> tuple[Run, list[Generation]]:
    """Send the new-comparison form as a user does and wait until every model has answered:
    the run and its generations in position order."""
    response = client.post("/", form_data(prompt, models, **fields))
    assert response.status_code == 302, response.content.decode()[:600]
    run = Run.objects.latest("created_at")
    return run, sorted(wait_for_generations(run, timeout), key=lambda g: g.position)


def wait_for_generations(run: Run, timeout: float = 30.0) -> list[Generation]:
    """Wait until every generation of `run` is terminal and its automatic checks have
    landed (tasks run in threads; a pane is drawn again when its check ends, so a
    browser test that starts earlier can find the element it holds replaced)."""
    deadline = time.monotonic() + timeout
    gens: list[Generation] = []
    while time.monotonic() < deadline:
        gens = list(Generation.objects.filter(run=run))
        if gens and all(g.is_terminal and g.check_status != Generation.CheckStatus.PENDING for g in gens):
            return gens
        time.sleep(0.05)
    raise AssertionError(f"generations still pending: {[(g.model_key, g.status, g.check_status) for g in gens]}")


# --- providers faked at the HTTP boundary ---------------------------------------------------------


class Recorder:
    """An httpx.MockTransport handler: answers with `reply(request)` and keeps every
    request, body read, in `requests` (thread-safe: adapters send requests in parallel)."""

    def __init__(self, reply: Callable[[httpx.Request], httpx.Response]):
        self.reply = reply
        self.requests: list[httpx.Request] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        with self._lock:
            self.requests.append(request)
        return self.reply(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=self.transport)
