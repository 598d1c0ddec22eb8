"""The generate task: the only place a provider is called.

One task per generation. It claims its row atomically (queued → running), calls
the adapter through the shared HTTP client, retries what is retryable with
backoff that honours Retry-After, stores the images and records everything on
the Generation row. Every generation reaches a terminal state before its deadline.
"""

import logging
import random
import time

from django.conf import settings
from django.db import transaction
from django.tasks import task
from django.utils import timezone

from compare import images, pricing
from compare.http import shared_client
from compare.models import Generation, Image, Reference
from compare.providers import adapter_for
from compare.providers.base import ErrorKind, GenerationRequest, GenerationResult, InputImage, ProviderError

logger = logging.getLogger(__name__)
MAX_BACKOFF = 120.0


def _inputs(gen: Generation) -> tuple[list[InputImage], InputImage | None]:
    refs, mask = [], None
    for ref in gen.run.references.all():
        item = InputImage(images.open_bytes(ref.file), ref.mime_type, f"{ref.kind}-{ref.position + 1}.{ref.format}")
        if ref.kind == Reference.Kind.MASK:
            mask = item if gen.model.capabilities.mask else None
        else:
            refs.append(item)
    return refs, mask


def build_request(gen: Generation) -> GenerationRequest:
    options = gen.run.options
    references, mask = _inputs(gen)
    return GenerationRequest(
        model=gen.model,
        prompt=gen.run.prompt,
        aspect_ratio=options.get("aspect_ratio", "1:1"),
        resolution=options.get("resolution", "1K"),
        size=options.get("size") or None,
        quality=options.get("quality", "auto"),
        output_format=options.get("output_format", "png"),
        output_compression=options.get("output_compression"),
        background=options.get("background", "auto"),
        moderation=options.get("moderation", "auto"),
        n=int(options.get("n", 1)),
        partial_images=int(options.get("partial_images", 0)),
        grounding=bool(options.get("grounding", False)),
        references=references,
        mask=mask,
    )


def backoff_delay(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter; a provider's Retry-After wins when longer."""
    base = settings.COMPARE_RETRY_BASE_DELAY * (2 ** (attempt - 1))
    jittered = base + random.uniform(0, base * 0.25)
    return min(MAX_BACKOFF, max(retry_after or 0.0, jittered))


def _claim(generation_id) -> bool:
    return bool(
        Generation.objects.filter(pk=generation_id, status=Generation.Status.QUEUED).update(
            status=Generation.Status.RUNNING, started_at=timezone.now()
        )
    )


def _still_running(generation_id) -> bool:
    return Generation.objects.filter(pk=generation_id, status=Generation.Status.RUNNING).exists()


def _finish(gen: Generation, status: str, **fields) -> None:
    """Write the terminal state, unless the user cancelled meanwhile."""
    now = timezone.now()
    fields.update(status=status, finished_at=now)
    if gen.started_at:
        fields["latency_ms"] = int((now - gen.started_at).total_seconds() * 1000)
    Generation.objects.filter(pk=gen.pk, status=Generation.Status.RUNNING).update(**fields)


def _store_partial(gen: Generation, index: int, data: bytes) -> None:
    """Previews are best-effort: a bad one is skipped, never fails the generation."""
    try:
        Image.objects.create(generation=gen, index=index, is_partial=True, **images.store(data))
    except Exception:
        logger.warning("Skipping preview %s of generation %s", index, gen.pk, exc_info=True)


def _record_success(gen: Generation, result: GenerationResult, attempts: list) -> None:
    stored = [images.store(img.data) for img in result.images]
    model = gen.model
    with transaction.atomic():
        if not _still_running(gen.pk):
            return
        for index, fields in enumerate(stored):
            Image.objects.create(generation=gen, index=index, **fields)
        _finish(
            gen,
            Generation.Status.SUCCEEDED,
            usage=result.usage,
            cost_usd=pricing.actual(model, result.usage),
            params_sent=result.sent,
            params_echoed=result.echoed,
            text=result.text,
            grounding=result.grounding,
            attempt_log=attempts,
            error_kind="",
            error_message="",
        )


def _record_failure(gen: Generation, err: ProviderError, attempts: list, sent: dict) -> None:
    status = Generation.Status.REFUSED if err.kind == ErrorKind.REFUSED else Generation.Status.FAILED
    _finish(
        gen,
        status,
        error_kind=err.kind.value,
        error_message=err.message,
        attempt_log=attempts,
        usage=err.usage,
        cost_usd=pricing.actual(gen.model, err.usage) if err.usage else None,
        params_sent=sent,
    )


def run_generation(generation_id) -> str:
    if not _claim(generation_id):
        return "skipped"  # a duplicate delivery, or cancelled before it started
    gen = Generation.objects.select_related("run").get(pk=generation_id)
    model = gen.model
    if model is None or not model.available:
        err = ProviderError(ErrorKind.NOT_FOUND, f"The model {gen.model_key!r} is no longer configured or has no API key.")
        _record_failure(gen, err, [], {})
        return gen.status
    adapter = adapter_for(model.protocol)
    request = build_request(gen)
    request.on_partial = lambda index, data, mime: _store_partial(gen, index, data)
    sent = adapter.wire_params(request)
    Generation.objects.filter(pk=gen.pk).update(params_sent=sent)
    deadline = time.monotonic() + settings.COMPARE_GENERATION_DEADLINE
    attempts: list[dict] = []
    for attempt in range(1, settings.COMPARE_MAX_ATTEMPTS + 1):
        Generation.objects.filter(pk=gen.pk).update(attempts=attempt)
        started = time.monotonic()
        try:
            result = adapter.generate(request, shared_client())
            attempts.append({"attempt": attempt, "ok": True, "seconds": round(time.monotonic() - started, 2)})
            _record_success(gen, result, attempts)
            return "succeeded"
        except ProviderError as exc:
            err = exc
        except images.ImageRejected as exc:
            err = ProviderError(ErrorKind.MALFORMED, f"The provider sent an unreadable image: {exc}")
        except Exception:
            logger.exception("Generation %s crashed", gen.pk)
            err = ProviderError(ErrorKind.SERVER, "An internal error stopped this generation; the details are in the server log.")
            attempts.append({"attempt": attempt, "ok": False, "kind": err.kind.value, "error": err.message})
            break
        attempts.append({
            "attempt": attempt, "ok": False, "kind": err.kind.value, "error": err.message,
            "status": err.status, "seconds": round(time.monotonic() - started, 2),
        })
        Generation.objects.filter(pk=gen.pk).update(attempt_log=attempts)
        if not err.retryable or attempt == settings.COMPARE_MAX_ATTEMPTS:
            break
        delay = backoff_delay(attempt, err.retry_after)
        if time.monotonic() + delay > deadline:
            err = ProviderError(err.kind, f"{err.message} (gave up: the next retry would pass the deadline)")
            break
        time.sleep(delay)
        if not _still_running(gen.pk):
            return "cancelled"
    _record_failure(gen, err, attempts, sent)
    return "failed"


@task
def generate(generation_id: str) -> str:
    return run_generation(generation_id)


def enqueue_generations(generation_ids: list[str]) -> None:
    for generation_id in generation_ids:
        generate.enqueue(str(generation_id))
