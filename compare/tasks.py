"""The generate task: the only place a provider is called.

One task per generation. It waits, still queued, for its model's provider limits
(compare/limits.py; every retry waits again), claims its row atomically (queued →
running), calls the adapter through the shared HTTP client, retries what is retryable with
backoff that honours Retry-After, stores the images and records everything on
the Generation row. Every generation reaches a terminal state before its deadline.
Once it has succeeded, its automatic checks (compare/checks/) run as a task of their own,
`check`, which also applies the fallback rule "fall back when the text check fails".
"""

import logging
import random
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection, connections, router, transaction
from django.db.models import Max
from django.tasks import task
from django.utils import timezone

from compare import budget, checks, images, limits, live, pricing, reuse, run_query
from compare.http import shared_client
from compare.models import Generation, Image, Reference, Run
from compare.precompiled import Precompiled, attach, prep_of
from compare.providers import adapter_for
from compare.providers.base import ErrorKind, GenerationRequest, GenerationResult, InputImage, ProviderError
from compare.redact import redact, redact_json
from compare.registry import get_model

logger = logging.getLogger(__name__)
MAX_BACKOFF = 120.0


def _inputs(gen: Generation) -> tuple[list[InputImage], InputImage | None, InputImage | None]:
    """The run's references, and its mask and markup overlay for the models that take them."""
    caps = gen.model.capabilities
    refs, mask, markup = [], None, None
    for ref in gen.run.references.all():
        item = InputImage(images.open_bytes(ref.file), ref.mime_type, f"{ref.kind}-{ref.position + 1}.{ref.format}")
        if ref.kind == Reference.Kind.MASK:
            mask = item if caps.mask else None
        elif ref.kind == Reference.Kind.MARKUP:
            markup = item if caps.markup else None
        else:
            refs.append(item)
    return refs, mask, markup


def build_request(gen: Generation) -> GenerationRequest:
    options = {**gen.run.options, **gen.option_overrides}
    references, mask, markup = _inputs(gen)
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
        markup=markup,
    )


def backoff_delay(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter; a provider's Retry-After wins when longer."""
    base = settings.COMPARE_RETRY_BASE_DELAY * (2 ** (attempt - 1))
    jittered = base + random.uniform(0, base * 0.25)
    return min(MAX_BACKOFF, max(retry_after or 0.0, jittered))


# `waiting_for` of a suite run's generation held back by its author's in-flight limit:
# queued but not claimable until compare/suites/dispatch.py `release_held` sends it.
HELD = "Queued behind your other generations"


def _claim(generation_id, at: datetime | None = None) -> uuid.UUID | None:
    """queued → running under a new claim token (started `at`, by default now); the token,
    or None when it was not queued (any more) for this task to run."""
    token = uuid.uuid4()
    claimed = (
        Generation.objects.filter(pk=generation_id, status=Generation.Status.QUEUED)
        .exclude(waiting_for__startswith=HELD)
        .update(status=Generation.Status.RUNNING, started_at=at or timezone.now(), claim=token)
    )
    return token if claimed else None


def _mine(gen: Generation):
    """The row, while it is still running under this task's claim."""
    return Generation.objects.filter(pk=gen.pk, status=Generation.Status.RUNNING, claim=gen.claim)


def _still_running(gen: Generation) -> bool:
    # Locks the row (PostgreSQL) so a cancel cannot slip in before the outcome is written.
    alias = router.db_for_write(Generation)
    assert connections[alias].in_atomic_block, "the lock lasts as long as the caller's transaction"
    return _STILL_RUNNING.exists(alias, gen.pk, gen.claim)


def _finish(gen: Generation, status: str, **fields) -> bool:
    """Write the terminal state, unless the user cancelled (or retried) meanwhile."""
    now = timezone.now()
    fields.update(status=status, finished_at=now)
    if gen.started_at:
        fields["latency_ms"] = int((now - gen.started_at).total_seconds() * 1000)
    finished = bool(_mine(gen).update(**fields))
    if finished:
        live.changed(gen.run_id)  # open run pages learn of it on their next poll
    return finished


def _store_partial(gen: Generation, index: int, data: bytes) -> None:
    """Previews are best-effort: a bad one is skipped, never fails the generation."""
    try:
        stored = images.store(data, strip=True, thumbnails=False)
        row = Image.objects.create(generation=gen, index=index, is_partial=True, **stored)
        if images.write_thumbnails(stored)["run"] != row.thumbnail:  # the storage renamed it
            Image.objects.filter(pk=row.pk).update(thumbnail=stored["thumbnail"])
    except Exception:
        logger.warning("Skipping preview %s of generation %s", index, gen.pk, exc_info=True)


def _record_success(
    gen: Generation, result: GenerationResult, attempts: list, answered: limits.Slot | None = None
) -> None:
    """Store the images and write the outcome in one transaction, which also gives back the
    call's slot (`answered`): one write for all of it."""
    stored: list[images.Stored] = []
    # An open run page shows the result at once and its thumbnails follow: each image is
    # decoded here, once, and its reduced copy kept for them. Else (a burst through the
    # API, a suite, a worker elsewhere) a PNG is only checked, and decoded on its
    # thumbnails' first request.
    watched = live.watched(gen.run_id)
    try:
        for img in result.images:
            # Under the process's pixel limit; thumbnails once marked done.
            stored.append(images.store(img.data, strip=True, thumbnails=False, preview=watched))  # noqa: PERF401 (kept one by one: a failure removes those stored so far)
        with transaction.atomic():
            if answered is not None:
                answered.release()
            if not _still_running(gen):
                raise _Dropped
            for index, fields in enumerate(stored):
                Image.objects.create(generation=gen, index=index, **fields)
            finished = _finish(
                gen,
                Generation.Status.SUCCEEDED,
                usage=result.usage,
                **budget.tally(attempts, gen.estimated_cost_usd),
                params_sent=result.sent,
                params_echoed=redact_json(result.echoed),
                text=redact(result.text),
                grounding=redact_json(result.grounding),
                attempt_log=attempts,
                error_kind="",
                error_message="",
                check_status=Generation.CheckStatus.PENDING,
            )
            if not finished:
                raise _Dropped  # rolls the image rows back
            enqueue_checks(gen)
    except BaseException:
        # No half-written record: files this attempt wrote and no row uses go again. The
        # slot is given back all the same (its release above rolled back, or never ran).
        images.discard_unreferenced(stored)
        if answered is not None:
            answered.release()
        raise
    if watched:
        _write_thumbnails(gen, stored)
    # Else nobody has the run open in this process (a burst through the API, a suite, a
    # worker elsewhere): each thumbnail is made on its first request (images.ensure_thumbnail),
    # and the reduced copies go now.


# Seconds a watched run's thumbnails wait after its result is committed: the open page's
# next poll (compare/live.py `INTERVAL_MS`) and its fetch of the new image go first, not
# behind this background work on the process's cores.
THUMBNAILS_AFTER = 0.4


def _write_thumbnails(gen: Generation, stored: list[images.Stored]) -> None:
    """After the result is visible, for a page that shows it now: a thumbnail that fails
    here is made on its first request, and one the page asked for meanwhile is not made
    again."""
    time.sleep(THUMBNAILS_AFTER)
    for fields in stored:
        try:  # a storage that cannot answer (S3 away) never turns a success into a crash
            names = [images.thumbnail_name(fields["sha256"], size) for size in images.THUMB_SIZES]
            if all(default_storage.exists(name) for name in names):
                fields.preview = None
                continue
            planned = fields["thumbnail"]
            if images.write_thumbnails(fields)["run"] != planned:  # the storage renamed it
                Image.objects.filter(generation=gen, thumbnail=planned).update(thumbnail=fields["thumbnail"])
        except Exception:
            logger.warning("Thumbnails of generation %s deferred to first request", gen.pk, exc_info=True)


class _Dropped(Exception):
    """The generation was cancelled while its result was on the way."""


def _record_failure(gen: Generation, err: ProviderError, attempts: list, sent: dict) -> None:
    """Write the failure, and the fallback side it starts (`start_fallback`) in the same
    transaction: no page, API client or waiting test ever sees the run finished between
    the two (a page's poll stops once the run is finished and would never show the
    fallback). A fallback that cannot be started never holds the failure back."""
    status = Generation.Status.REFUSED if err.kind == ErrorKind.REFUSED else Generation.Status.FAILED
    with transaction.atomic(using=router.db_for_write(Generation)):
        finished = _finish(
            gen,
            status,
            error_kind=err.kind.value,
            error_message=err.message,
            attempt_log=attempts,
            usage=err.usage,
            **budget.tally(attempts, gen.estimated_cost_usd),
            params_sent=sent,
            params_echoed=redact_json(err.echoed),  # a refusal's where and why (blind-safe wording)
        )
        if finished and status == Generation.Status.FAILED:
            try:
                start_fallback(gen)  # its own savepoint: rolled back alone if it fails
            except Exception:
                logger.exception("Could not start the fallback of generation %s", gen.pk)


def _from_cache(gen: Generation) -> bool:
    """A reused result costs nothing; the attempts before it (a Retry after billed ones) stay
    on the log and in the cost."""
    hit = reuse.find_hit(gen)
    if hit is None:
        return False
    with transaction.atomic():
        if not _still_running(gen):
            return True
        reuse.copy_images(hit, gen)
        attempts = [
            *(_mine(gen).values_list("attempt_log", flat=True).first() or []),
            {"attempt": 0, "ok": True, "cached_from": str(hit.pk), **budget.attempt_cost(None, Decimal("0"))},
        ]
        if _finish(
            gen,
            Generation.Status.SUCCEEDED,
            cache_key=gen.cache_key,
            cached_from=hit,
            usage={},
            **budget.tally(attempts, gen.estimated_cost_usd),
            params_sent=hit.params_sent,
            params_echoed=hit.params_echoed,
            text=hit.text,
            grounding=hit.grounding,
            attempt_log=attempts,
            check_status=Generation.CheckStatus.PENDING,
        ):
            enqueue_checks(gen)
    return True


def _release_connection() -> None:
    """Before a call that waits on the network: this thread's database connection goes back
    (to the pool, where there is one: COMPARE_DB_POOL), so hundreds of calls in flight never
    hold hundreds of PostgreSQL connections (its default limit is 100). SQLite's are kept."""
    if connection.vendor != "sqlite" and not connection.in_atomic_block:
        connection.close()


def _attempt_timeout(deadline: float) -> float | None:
    remaining = deadline - time.monotonic()
    return max(1.0, min(settings.COMPARE_REQUEST_TIMEOUT, remaining))


def _bill(gen: Generation, kind: str | None, usage: dict, unknown_share: float | None = None) -> dict:
    """What an attempt's log entry says about its bill (compare/budget.py `attempt_cost`):
    its usage and cost when the reply reported usage, and the share the adapter says may
    have been billed without usage to show it."""
    cost = pricing.actual(gen.model, usage) if usage else None
    return budget.attempt_cost(kind, cost, unknown_share) | ({"usage": usage} if cost is not None else {})


def _call_with_retries(
    gen: Generation, adapter, request: GenerationRequest, sent: dict, deadline: float, slot: limits.Slot | None = None
) -> str:
    """Call the provider until a result, a final error or the generation's `deadline`
    (monotonic, set once in `run_generation`: waiting for the model's limits spends it too)."""
    # A user's retry keeps the earlier attempts on record (see runs.retry_generation).
    attempts: list[dict] = list(gen.attempt_log)
    timeouts = 0  # of this call: each may be billed, so the model says how many to retry
    for attempt in range(1, settings.COMPARE_MAX_ATTEMPTS + 1):
        if slot is None and limits.limited(request.model):  # waiting for the limits is not an attempt
            try:
                slot = limits.acquire(request.model, gen, stop=lambda: not _mine(gen).exists(), deadline=deadline)
            except limits.WaitedTooLong as exc:
                err = ProviderError(ErrorKind.RATE_LIMIT, str(exc))
                break
            if slot is None:
                return "cancelled"
        # One write before the call: the attempt, on the first one what is sent and the key a
        # later identical request finds its result by, and for a model that does not wait
        # for its limits the call's record (compare/limits.py `record`).
        first = {"params_sent": sent, "cache_key": gen.cache_key} if attempt == 1 else {}
        with transaction.atomic():
            if not _mine(gen).update(attempts=attempt, **first):
                if slot is not None:
                    slot.release()
                return "cancelled"  # cancelled (or retried) before the call: nothing is sent
            if slot is None:
                slot = limits.record(request.model, gen)
        request.timeout = _attempt_timeout(deadline)
        started = time.monotonic()
        answered, slot = slot, None  # this attempt's call; a retry takes a slot of its own
        try:
            try:
                _release_connection()
                result = adapter.generate(request, shared_client())
            except BaseException:
                answered.release()  # the call is over, whatever it brought
                raise
            attempts.append(
                {
                    "attempt": attempt,
                    "ok": True,
                    "seconds": round(time.monotonic() - started, 2),
                    **_bill(gen, None, result.usage, result.unknown_share),
                }
            )
            _record_success(gen, result, attempts, answered)  # gives the slot back as it records
            return "succeeded"
        except _Dropped:
            return "cancelled"
        except ProviderError as exc:
            err = exc
        except images.ImageRejected as exc:
            err = ProviderError(ErrorKind.MALFORMED, f"The provider sent an unreadable image: {exc}")
        except Exception:
            logger.exception("Generation %s crashed", gen.pk)
            err = ProviderError(
                ErrorKind.SERVER, "An internal error stopped this generation; the details are in the server log."
            )
            attempts.append({"attempt": attempt, "ok": False, "kind": err.kind.value, "error": err.message})
            break
        attempts.append(
            {
                "attempt": attempt,
                "ok": False,
                "kind": err.kind.value,
                "error": err.message,
                "status": err.status,
                "seconds": round(time.monotonic() - started, 2),
                **_bill(gen, err.kind.value, err.usage, err.unknown_share),
            }
        )
        _mine(gen).update(attempt_log=attempts, **budget.tally(attempts, gen.estimated_cost_usd))
        if not err.retryable or attempt == settings.COMPARE_MAX_ATTEMPTS:
            break
        timeouts += err.kind == ErrorKind.TIMEOUT
        if timeouts > request.model.timeout_retries:
            err = ProviderError(err.kind, f"{err.message} (not retried again: a timed-out call may still be billed)")
            break
        delay = backoff_delay(attempt, err.retry_after)
        if time.monotonic() + delay > deadline:
            err = ProviderError(err.kind, f"{err.message} (gave up: the next retry would pass the deadline)")
            break
        time.sleep(delay)
        if not _mine(gen).exists():
            return "cancelled"
    _record_failure(gen, err, attempts, sent)
    return "failed"


def _first_slot(generation_id, deadline: float) -> tuple[limits.Slot | None, str, str, Generation | None]:
    """Wait, still queued, for the model's limits (compare/limits.py), before the claim: a
    waiting generation shows as queued, and its latency counts from its call. A slot for the
    first attempt, or none and why: "" (the model has no limits, or no call is needed),
    "gone" (no longer queued: cancelled, or another delivery has it), or the message of a
    wait that reached the deadline; its result-reuse key when it was worked out here; and,
    when nothing was waited for, the queued row as read (with its run and references), which
    the claim that follows at once changes only as it says."""
    queued = Generation.objects.filter(pk=generation_id, status=Generation.Status.QUEUED).exclude(
        waiting_for__startswith=HELD  # a suite's generation held back: not ours to run yet
    )
    gen = _one(_QUEUED, generation_id, references=True)
    if gen is None:
        return None, "gone", "", None
    model = gen.model
    if model is None or not model.available or not limits.limited(model):
        return None, "", "", gen
    gen.cache_key = reuse.key_for(gen)
    if reuse.find_hit(gen) is not None:
        return None, "", gen.cache_key, gen
    try:
        slot = limits.acquire(model, gen, stop=lambda: not queued.exists(), deadline=deadline)
    except limits.WaitedTooLong as exc:
        return None, str(exc), gen.cache_key, None
    return slot, "" if slot else "gone", gen.cache_key, None


# Every generation reads its row with its run once before its claim (again after it, when it
# waited for its model's limits):
# statements compiled once (compare/precompiled.py), not per generation.
_STAND_IN = uuid.UUID("00000000-0000-4000-8000-00000007a5c0")
_QUEUED = Precompiled(
    lambda pk: (
        Generation.objects.filter(pk=pk, status=Generation.Status.QUEUED)
        .exclude(waiting_for__startswith=HELD)
        .select_related("run")
    ),
    [(_STAND_IN, prep_of(Generation, "id"))],
)
_CLAIMED = Precompiled(
    lambda pk: Generation.objects.filter(pk=pk).select_related("run"), [(_STAND_IN, prep_of(Generation, "id"))]
)


_STILL_RUNNING = Precompiled(
    lambda pk, claim: (
        Generation.objects.filter(pk=pk, status=Generation.Status.RUNNING, claim=claim)
        .select_for_update()
        .values("pk")[:1]
    ),
    [
        (_STAND_IN, prep_of(Generation, "id")),
        (uuid.UUID("00000000-0000-4000-8000-00000007a5c1"), prep_of(Generation, "claim")),
    ],
)


def _one(query: Precompiled, generation_id, references: bool = False) -> Generation | None:
    """The generation with its run; with `references`, the run's references too, read once
    for both the result-reuse key (compare/reuse.py `key_for`) and the request (`_inputs`)."""
    alias = router.db_for_read(Generation)
    gen = query.first(alias, uuid.UUID(str(generation_id)))
    if gen is not None and references:
        attach(gen.run, "references", run_query.REFERENCES.objects(alias, gen.run_id))
    return gen


def run_generation(generation_id) -> str:
    # One deadline per generation, from its first wait: the wait for the model's limits and
    # every attempt and retry after it share it (the module docstring's promise).
    deadline = time.monotonic() + settings.COMPARE_GENERATION_DEADLINE
    slot, why, cache_key, queued = _first_slot(generation_id, deadline)
    if why == "gone":
        return "skipped"
    try:
        return _run_claimed(generation_id, slot, why, deadline, cache_key, queued)
    finally:
        if slot is not None:
            slot.release()  # a no-op once the call gave it back


def _run_claimed(
    generation_id,
    slot: limits.Slot | None,
    waited: str,
    deadline: float,
    cache_key: str,
    queued: Generation | None = None,
) -> str:
    claimed_at = timezone.now()
    token = _claim(generation_id, claimed_at)
    if token is None:
        return "skipped"  # a duplicate delivery, or cancelled before it started
    if queued is not None:  # read just before the claim, which changed only these fields
        gen = queued
        gen.status, gen.started_at = Generation.Status.RUNNING, claimed_at
    else:
        claimed = _one(_CLAIMED, generation_id, references=True)
        if claimed is None:  # deleted with its run the moment it was claimed
            return "skipped"
        gen = claimed
    gen.claim = token
    live.changed(gen.run_id)  # queued → running
    if waited:  # the model's limits left no room before the deadline
        _record_failure(gen, ProviderError(ErrorKind.RATE_LIMIT, waited), [], {})
        return "failed"
    model = gen.model
    if model is None or not model.available:
        err = ProviderError(
            ErrorKind.NOT_FOUND, f"The model {gen.model_key!r} is no longer configured or has no API key."
        )
        _record_failure(gen, err, [], {})
        return "failed"
    if model.retired:  # shut down by its provider (a retry, a fallback or a re-run of an older run): no call
        _record_failure(gen, ProviderError(ErrorKind.NOT_FOUND, model.retirement_refusal()), [], {})
        return "failed"
    gen.cache_key = cache_key or reuse.key_for(gen)  # the inputs it hashes do not change while queued
    if _from_cache(gen):  # writes the key with the outcome
        return "cached"
    adapter = adapter_for(model.protocol)
    request = build_request(gen)
    request.on_partial = lambda index, data, mime: _store_partial(gen, index, data)
    sent = adapter.wire_params(request)
    return _call_with_retries(gen, adapter, request, sent, deadline, slot)


def expire_overdue() -> int:
    """Fail generations running past their deadline (a hung call, a lost worker), so
    no pane spins forever. Runs from the server's sweeper (compare/management/commands/serve.py)
    and from the command line's wait; never from a page view (a GET writes nothing)."""
    grace = 60
    limit = timezone.now() - timedelta(seconds=settings.COMPARE_GENERATION_DEADLINE + grace)
    expired = Generation.objects.filter(status=Generation.Status.RUNNING, started_at__lt=limit).update(
        status=Generation.Status.FAILED,
        finished_at=timezone.now(),
        error_kind=ErrorKind.TIMEOUT.value,
        error_message="No result before the deadline; the provider call was abandoned.",
    )
    if expired:
        live.changed()  # which runs is not known here: every page checks again
    return expired


def start_fallback(gen: Generation) -> Generation | None:
    """When a side fails for good and the run asked for it, try the backup model or a
    lower quality, as a side of its own, labelled as the fallback it is. A side of a
    suite run's Run joins its author's held queue instead of going straight to the task
    queue: it waits for the in-flight limit like every other suite generation
    (compare/suites/dispatch.py `hold`)."""
    options = gen.run.options
    key, quality = options.get("fallback_model") or "", options.get("fallback_quality") or ""
    if gen.fallback_of_id or not (key or quality):
        return None
    model = get_model(key) if key else gen.model
    if model is None or not model.available or model.retired:
        return None
    overrides = {"quality": quality} if quality and model.capabilities.qualities else {}
    with transaction.atomic():
        # One fallback per side, even after a retry fails again; positions under a lock.
        Run.objects.select_for_update().filter(pk=gen.run_id).exists()
        if gen.fallbacks.exists():
            return None
        position = gen.run.generations.aggregate(top=Max("position"))["top"] + 1
        fallback = Generation.objects.create(
            run=gen.run,
            position=position,
            blind_position=position,
            model_key=model.key,
            model_label=model.label,
            model_id=model.model_id,
            simulated=model.simulated,
            fallback_of=gen,
            option_overrides=overrides,
            estimated_cost_usd=pricing.estimate(model, {**options, **overrides}, gen.run.prompt),
        )
        if gen.run.suite_run_id:
            from compare.suites.dispatch import hold  # dispatch imports compare.runs, which imports this

            hold(fallback, gen.run.author_id)
        else:
            transaction.on_commit(lambda: enqueue_generations([fallback.id]))
    return fallback


def on_checks_failed(generation_id) -> Generation | None:
    """The fallback rule's second half: when a side's automatic checks failed because of
    the text check (a misread or missing string, not only the specification) and its run
    asked for it (the option `fallback_on_text_check`), start its fallback side. Safe to
    call more than once: a side gets at most one fallback (`start_fallback`)."""
    gen = Generation.objects.select_related("run").filter(pk=generation_id).first()
    if gen is None or gen.status != Generation.Status.SUCCEEDED or not gen.run.options.get("fallback_on_text_check"):
        return None
    if gen.check_status != Generation.CheckStatus.FAILED or not checks.text_failed(gen.checks):
        return None
    fallback = start_fallback(gen)
    if fallback is not None:
        live.changed(gen.run_id)
    return fallback


def resume_checks() -> int:
    """After a restart: the automatic checks that were still to run are queued again (the
    in-process pool lost them), so no pane says "Checking text…" for ever."""
    pending = list(
        Generation.objects.filter(
            status=Generation.Status.SUCCEEDED, check_status=Generation.CheckStatus.PENDING
        ).values_list("id", flat=True)
    )
    for generation_id in pending:
        check.enqueue(str(generation_id))
    return len(pending)


def enqueue_checks(gen: Generation) -> None:
    """Once the success is committed, the automatic checks. Those that decode the images (the
    text read back by OCR, a transparency check) run as a task of their own: the image shows
    at once (its pane says "Checking text…"), the verdict follows. The others read headers
    only and run here, at once: a task of its own cost more than they do (a message to the
    broker and back, in the scale-out profile)."""
    from compare.checks.runner import reads_pixels  # the OCR engine loads only where checks run

    if reads_pixels(gen):
        transaction.on_commit(lambda: check.enqueue(str(gen.pk)))
    else:
        transaction.on_commit(lambda: _check_here(gen.pk))


def _check_here(generation_id) -> None:
    """The `check` task's work, in this thread; a crash is logged and never fails the generation."""
    try:
        check.call(str(generation_id))
    except Exception:
        logger.exception("The checks of generation %s could not run", generation_id)


@task
def generate(generation_id: str) -> str:
    try:
        return run_generation(generation_id)
    finally:
        # A slot of the author's in-flight limit may be free: send their next held suite generations.
        from compare.suites.dispatch import release_held  # dispatch imports compare.runs, which imports this

        release_held(generation_id=generation_id)


@task
def check(generation_id: str) -> str:
    """The automatic checks of a succeeded generation (compare/checks/runner.py), then the
    fallback rule when its text check failed."""
    from compare.checks.runner import check_generation  # the OCR engine loads only where checks run

    status = check_generation(generation_id)
    if status == Generation.CheckStatus.FAILED:
        on_checks_failed(generation_id)
    return status


def enqueue_generations(generation_ids: Iterable[uuid.UUID | str]) -> None:
    for generation_id in generation_ids:
        generate.enqueue(str(generation_id))
