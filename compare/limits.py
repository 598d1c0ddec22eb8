"""Per-model provider limits: requests per minute and generations in flight.

A registry entry may set `rpm` (requests started in any 60 s) and `max_in_flight`
(requests sent and not yet answered); compare/models.toml documents both. Every
provider call attempt takes a slot first (`acquire`, from compare/tasks.py) and gives
it back when its answer is in (`Slot.release`). Slots are `ProviderCall` rows, so the
limits hold across every web and worker process sharing the database: the count and
the insert happen in one transaction that only one process at a time can be in per
model — a transaction-scoped advisory lock on PostgreSQL, the database's write lock
on SQLite (compare/settings.py opens every transaction with BEGIN IMMEDIATE).

While a generation waits, `Generation.waiting_for` says why ("Waiting for GPT Image 2's
rate limit (5 requests per minute)") and open run pages learn of it through
compare/live.py; a viewer who must not see model names reads nothing of it (`waiting_text`):
which side waits for a rate limit would tell them which model it is.
Waiting is not an attempt: no retry is used up. A call whose process crashed never
gets its `finished_at`; it stops counting once it is older than the generation
deadline (plus a grace period), so a crash never blocks a model for good.

Calls to the built-in simulator are recorded but not limited (it has no limits, and a
demo or a test should not wait for a real account's tier) unless
COMPARE_LIMIT_SIMULATOR is set.
"""

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from compare import live
from compare.models import Generation, ProviderCall
from compare.registry import Model, registry

logger = logging.getLogger(__name__)

WINDOW = 60.0  # seconds: the window `rpm` counts requests in
POLL = 0.5  # seconds at most between two looks while waiting (a cancel is noticed within it)
GRACE = 60.0  # seconds past the generation deadline after which an unfinished call counts as crashed
PRUNE_EVERY = 30.0  # seconds between two clean-ups of old rows, per process
PREFIX = "Waiting for "  # every `waiting_for` written here starts so (compare/suites/ writes others)

_prune_lock = threading.Lock()
_pruned_at = 0.0


class WaitedTooLong(Exception):
    """The deadline passed while waiting for a slot; the message says what was waited for."""


@dataclass
class Slot:
    """One provider call's place under its model's limits; `release` when the answer is in
    (inside the transaction that records the answer, or on its own)."""

    call_id: int
    released: bool = False

    def release(self) -> None:
        """Mark the call answered; once that has committed, releasing again writes nothing."""
        if self.released:
            return
        ProviderCall.objects.filter(pk=self.call_id, finished_at__isnull=True).update(finished_at=timezone.now())
        transaction.on_commit(self._released)  # at once outside a transaction; never if it rolls back

    def _released(self) -> None:
        self.released = True


def limited(model: Model) -> bool:
    """Whether calls to `model` wait for its limits right now."""
    if model.rpm is None and model.max_in_flight is None:
        return False
    return not model.simulated or settings.COMPARE_LIMIT_SIMULATOR


def stale_after() -> timedelta:
    """An unfinished call older than this was abandoned by a crashed process."""
    return timedelta(seconds=settings.COMPARE_GENERATION_DEADLINE + GRACE)


def describe(model: Model) -> str:
    """The limits as a person reads them, e.g. "5 requests per minute, 4 in flight"."""
    parts = []
    if model.rpm is not None:
        parts.append(describe_rpm(model.rpm))
    if model.max_in_flight is not None:
        parts.append(f"{model.max_in_flight} in flight")
    return ", ".join(parts)


def _blocked(model: Model) -> tuple[str, float] | None:
    """Why `model` has no free slot now and how long to wait before looking again, or None."""
    now = timezone.now()
    window_start = now - timedelta(seconds=WINDOW)
    counts = ProviderCall.objects.filter(model_key=model.key).aggregate(
        in_flight=Count("pk", filter=Q(finished_at__isnull=True, started_at__gt=now - stale_after())),
        last_minute=Count("pk", filter=Q(started_at__gt=window_start)),
    )
    if model.max_in_flight is not None and counts["in_flight"] >= model.max_in_flight:
        reason = (
            f"{PREFIX}{model.label}'s limit: {counts['in_flight']} of {model.max_in_flight} "
            f"generation{'s' if model.max_in_flight != 1 else ''} in flight."
        )
        return reason, POLL
    if model.rpm is not None and counts["last_minute"] >= model.rpm:
        # A slot frees when enough of the window's calls have left it: the (n - rpm + 1)-th oldest.
        leaving = (
            ProviderCall.objects.filter(model_key=model.key, started_at__gt=window_start)
            .order_by("started_at")
            .values_list("started_at", flat=True)[counts["last_minute"] - model.rpm]
        )
        until = (leaving - window_start).total_seconds()
        reason = f"{PREFIX}{model.label}'s rate limit ({describe_rpm(model.rpm)})."
        return reason, min(POLL, max(0.02, until))
    return None


def describe_rpm(rpm: int) -> str:
    return f"{rpm} request{'s' if rpm != 1 else ''} per minute"


def _lock(model_key: str) -> None:
    """Inside a transaction: make this process the only one counting `model_key`'s calls
    until the transaction ends."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"compare.limits:{model_key}"])
        elif connection.vendor == "sqlite" and getattr(connection, "transaction_mode", None) != "IMMEDIATE":
            # A write statement, even one that changes nothing, takes SQLite's one write lock.
            cursor.execute(f"UPDATE {ProviderCall._meta.db_table} SET id = id WHERE 0")


def _take(model: Model, generation: Generation) -> Slot | tuple[str, float]:
    """A slot, or why there is none yet and how long to wait."""
    if not limited(model):
        return record(model, generation)
    blocked = _blocked(model)  # a look without the lock first: waiters do not queue for it
    if blocked:
        return blocked
    with transaction.atomic():
        _lock(model.key)
        blocked = _blocked(model)
        if blocked:
            return blocked
        call = ProviderCall.objects.create(model_key=model.key, generation=generation)
    return Slot(call.pk)


def record(model: Model, generation: Generation) -> Slot:
    """The call about to be made to a model that does not wait for its limits (it has none,
    or it is simulated), on record for the status page: no count, no lock, so it can share
    the transaction that writes what is sent (compare/tasks.py)."""
    _prune()
    return Slot(ProviderCall.objects.create(model_key=model.key, generation=generation).pk)


def _set_waiting(generation: Generation, old: str, new: str) -> None:
    """Say why `generation` waits (or, with "", that it no longer does): only over what this
    wait wrote itself, never over another reason (a suite's held generation)."""
    if Generation.objects.filter(pk=generation.pk, waiting_for=old[:200]).update(waiting_for=new[:200]):
        generation.waiting_for = new[:200]
        live.changed(generation.run_id)


def acquire(
    model: Model, generation: Generation, *, stop: Callable[[], bool], deadline: float | None = None
) -> Slot | None:
    """Block until `model` has a free slot and take it for `generation`'s next call.

    None when `stop()` turns true first (the generation was cancelled); raises
    WaitedTooLong when the monotonic `deadline` passes first. Must not be called inside
    a transaction: its own must be the outermost to take the lock."""
    _prune()
    # What this wait has written: at first, any reason a crashed process left, which it takes over.
    waiting = generation.waiting_for if generation.waiting_for.startswith(PREFIX) else ""
    try:
        while True:
            if stop():
                return None
            taken = _take(model, generation)
            if isinstance(taken, Slot):
                return taken
            reason, pause = taken
            if deadline is not None and time.monotonic() + pause > deadline:
                raise WaitedTooLong(f"{reason.rstrip('.')}, until the deadline passed; no request was sent.")
            if reason != waiting:
                _set_waiting(generation, waiting, reason)
                waiting = reason
            time.sleep(pause * random.uniform(0.8, 1.0))  # spreads the waiters' looks
    finally:
        if waiting:
            _set_waiting(generation, waiting, "")


def waiting_text(generation: Generation, hidden: bool) -> str:
    """What a viewer may read about why `generation` has not started: nothing once it is
    finished, and nothing while names are hidden from them (their pane says "Queued…" like
    any other queued side: a side that waits for a rate limit is a side whose model has one)."""
    if hidden or not generation.waiting_for or generation.status not in Generation.PENDING:
        return ""
    return generation.waiting_for


@dataclass(frozen=True)
class Usage:
    """A model's limits and what is using them now, for the status page."""

    key: str
    label: str
    limits: str
    enforced: bool
    in_flight: int
    last_minute: int
    waiting: int


def usage() -> list[Usage]:
    """Every registry model's limits with its calls in flight and in the last minute, and
    the generations waiting for it: three grouped queries, whatever the number of models."""
    now = timezone.now()
    calls: dict[str, tuple[int, int]] = {
        key: (in_flight, last_minute)
        for key, in_flight, last_minute in ProviderCall.objects.filter(started_at__gt=now - stale_after())
        .values("model_key")
        .annotate(
            in_flight=Count("pk", filter=Q(finished_at__isnull=True)),
            last_minute=Count("pk", filter=Q(started_at__gt=now - timedelta(seconds=WINDOW))),
        )
        .values_list("model_key", "in_flight", "last_minute")
    }
    waiting = dict(
        Generation.objects.pending()
        .filter(waiting_for__startswith=PREFIX)
        .values("model_key")
        .annotate(n=Count("pk"))
        .values_list("model_key", "n")
    )
    return [
        Usage(
            key=model.key,
            label=model.label,
            limits=describe(model),
            enforced=limited(model),
            in_flight=calls.get(model.key, (0, 0))[0],
            last_minute=calls.get(model.key, (0, 0))[1],
            waiting=waiting.get(model.key, 0),
        )
        for model in registry().values()
    ]


def _prune() -> None:
    """Delete calls no limit looks at any more: finished ones past the window, crashed
    ones past the deadline. At most once per PRUNE_EVERY seconds per process."""
    global _pruned_at
    with _prune_lock:
        if time.monotonic() - _pruned_at < PRUNE_EVERY:
            return
        _pruned_at = time.monotonic()
    now = timezone.now()
    old = Q(finished_at__isnull=False, started_at__lt=now - timedelta(seconds=2 * WINDOW))
    ProviderCall.objects.filter(old | Q(started_at__lt=now - stale_after())).delete()
