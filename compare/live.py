"""Live updates of the run page: one cheap poll per open page, answered from a change token.

Each part of the run page that can change while someone looks at it carries a stamp,
`data-live="key:digest"`: every pane (`p<position>`), the notes (`n`), the verdict
(`v`), the fairness ledger (`l`), the run's actions (`a`) and its cost (`c`). The
digest is a hash of what that part shows, read by `read` in **one query**. While the
run is unfinished the page sends all its stamps every 100 ms to the `run_updates`
view (compare/views/run.py), which answers:

- 204 when nothing changed (286, which stops htmx's polling, once the run is finished);
- otherwise the changed parts only, as htmx out-of-band swaps that carry their new
  stamps, so panes, ledger, verdict and actions change together and nothing else is
  redrawn (a note added elsewhere never resets the zoom of a pane).

Every other response that draws these parts (a vote, a cancel, a note) draws them
with fresh stamps, so the page's stamps always describe what it shows. A stamp is
read *before* the data the part is drawn from, so a part is at worst drawn once more,
never left stale.

Most polls need no query at all: `current` keeps the digests in this process's
memory per run and viewer and trusts them for up to `RECHECK` seconds unless this
process wrote to that run since. `changed` records such writes: the models' signals
below (a new image or preview, note, vote, reveal or side) and the task and view code
that changes generations with `.update()`. For a moment after each write (`SETTLE`,
while its transaction may still be open) the run is read on every poll. The embedded
default runs its tasks in the web process, so a finished generation reaches the page
within one poll interval. Writes of another process (a Celery worker, the command line,
another web process) are pushed to this one on PostgreSQL by LISTEN/NOTIFY
(compare/livefeed.py, `heard`): they too reach the page within one poll interval, and
within `RECHECK` seconds where nothing is pushed (SQLite, or the listener reconnecting).
A poll is authenticated by a signed key in its URL (`poll_key`), so a "nothing new"
answer needs no session or user query either."""

import hashlib
import threading
import time
import uuid
from dataclasses import dataclass, field

from django.core import signing
from django.db import connections, router
from django.db.models import DateTimeField, Exists, F, Func, IntegerField, OuterRef, Subquery
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from compare import livefeed
from compare.models import Generation, Image, Note, Reveal, Vote
from compare.precompiled import Precompiled, prep_of

INTERVAL_MS = 100  # the poll interval while the run is unfinished; most polls cost no query
RECHECK = 1.0  # seconds a remembered state is trusted without news from this process
KEY_MAX_AGE = 7 * 24 * 3600  # a poll key from an older page falls back to the session
_SALT = "compare.live.poll"


@dataclass
class State:
    """The run as the page shows it, as digests: `stamps` maps each part's key to its digest."""

    stamps: dict[str, str] = field(default_factory=dict)
    finished: bool = False
    exists: bool = True

    def stamp(self, key: str) -> str:
        return f"{key}:{self.stamps.get(key, '')}"

    def changes(self, since: dict[str, str]) -> set[str] | None:
        """The keys whose digest differs from the page's; None when the page lacks a
        side the run now has (a fallback appeared: the page is reloaded to get its pane).
        A page that sent no pane stamps at all gets every part."""
        sides = {k for k in self.stamps if k.startswith("p")}
        sent = {k for k in since if k.startswith("p")}
        if sent and sides - sent:
            return None
        return {k for k, digest in self.stamps.items() if since.get(k) != digest}


def parse(since: str) -> dict[str, str]:
    """The page's stamps, "p0:ab12cd34,n:…": at most 64, each key and digest short."""
    stamps = {}
    for item in since.split(",")[:64]:
        key, _, digest = item.partition(":")
        if 0 < len(key) <= 4 and len(digest) <= 16:
            stamps[key] = digest
    return stamps


def _digest(*parts) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=4).hexdigest()


def _scalar(queryset, function: str, column: str, output_field):
    """A correlated subquery of one aggregate (COUNT, MAX) over `queryset`'s rows."""
    value = Func(F(column), function=function, output_field=output_field)
    return Subquery(queryset.order_by().annotate(value=value).values("value")[:1], output_field=output_field)


def read(run_id, user_id, arena: bool) -> State:
    """The run's parts as digests for this viewer, from the database in one query (one row
    per side, with the run-wide facts alongside), remembered for `current`."""
    read_at = _now()  # before the query: a write noted during it makes the result suspect
    state = _state(_rows(run_id, user_id), arena)
    _remember((str(run_id), user_id, arena), read_at, state)
    return state


def _query(run_id, user_id):
    run_notes = Note.objects.filter(run=OuterRef("run_id"))
    run_votes = Vote.objects.filter(run=OuterRef("run_id"))
    ints, times = IntegerField(), DateTimeField()
    return (
        Generation.objects.filter(run_id=run_id)
        .order_by()
        .annotate(
            n_images=_scalar(Image.objects.filter(generation=OuterRef("pk")), "COUNT", "pk", ints),
            notes_count=_scalar(run_notes, "COUNT", "pk", ints),
            notes_last=_scalar(run_notes, "MAX", "updated_at", times),
            notes_top=_scalar(run_notes, "MAX", "pk", ints),
            votes_count=_scalar(run_votes, "COUNT", "pk", ints),
            votes_last=_scalar(run_votes, "MAX", "updated_at", times),
            voted=Exists(Vote.objects.filter(run=OuterRef("run_id"), user_id=user_id)),
            seen=Exists(Reveal.objects.filter(run=OuterRef("run_id"), user_id=user_id)),
        )
        .values_list(
            "id",
            "position",
            "status",
            "started_at",
            "finished_at",
            "attempts",
            "n_images",
            "run__blind",
            "notes_count",
            "notes_last",
            "notes_top",
            "votes_count",
            "votes_last",
            "voted",
            "seen",
            "check_status",
            "waiting_for",  # why a side waits: its model's limits (compare/limits.py)
        )
    )


# Compiling `_query` costs several times what running it does: compiled once per database
# (compare/precompiled.py). The rows are the database's own values (a digest only needs
# them to be the same each time).
_ROWS = Precompiled(
    _query,
    [(uuid.UUID("00000000-0000-4000-8000-00000000c0de"), prep_of(Generation, "run")), (-424242, None)],
)


def _rows(run_id, user_id) -> list[tuple]:
    alias = router.db_for_read(Generation)
    sql, params = _ROWS.sql(alias, run_id, user_id)
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _state(rows: list[tuple], arena: bool) -> State:
    if not rows:
        return State(finished=True, exists=False)
    first = rows[0]
    blind, notes, votes, voted, seen = first[7], first[8:11], first[11:13], first[13], first[14]
    hidden = (blind or arena) and not (voted or seen)
    pending = any(row[2] in Generation.PENDING for row in rows)
    withheld = hidden and pending  # compare/judging/blind.py `prepare`: no side shows an outcome yet
    # A pane shows its automatic checks (compare/checks/) too; the page keeps polling until they are done.
    panes = {
        f"p{row[1]}": _digest(*row[:7], row[15], "" if hidden else row[16], hidden, withheld)
        for row in sorted(rows, key=lambda r: r[1])
    }
    sides = _digest(*panes.values())
    finished = not pending and not any(row[15] == Generation.CheckStatus.PENDING for row in rows)
    stamps = {
        **panes,
        "n": _digest(*notes, hidden),  # the note list and the notes pinned to each side
        "v": _digest(*votes, voted, hidden, finished, sides),  # the verdict: tally, clock, voting open
        "l": _digest(sides, hidden, finished),  # the fairness ledger and its warnings
        "a": _digest(hidden, pending),  # the run's actions: "Cancel the run" while a side is queued or running
        "c": _digest(sides, hidden),  # the run's cost
    }
    return State(stamps=stamps, finished=finished)


# --- what this process knows ---------------------------------------------------------

SETTLE = 1.0  # seconds after a write in which a read may not see it yet (its transaction still open)
_lock = threading.Lock()
_tick = 0  # counts the writes this process has made
_everything: tuple[int, float] = (0, 0.0)  # (tick, time) of the last write to runs not named
_writes: dict[str, tuple[int, float]] = {}  # run id → (tick, monotonic time) of its last write
_known: dict[tuple, tuple[int, float, State]] = {}  # (run id, user id, arena) → (tick, time) of a read, its state
_polled: dict[str, float] = {}  # run id → when an open page of it last polled this process
WATCHING = 5.0  # seconds after its last poll a page counts as open


def current(run_id, user_id, arena: bool) -> State:
    """`read`, or what it returned less than `RECHECK` seconds ago, unless this process
    has written to the run since (or so shortly before that the read may have missed it)."""
    livefeed.ensure_listening(heard)
    key = (str(run_id), user_id, arena)
    with _lock:
        _polled[key[0]] = time.monotonic()
        known = _known.get(key)
        if known is not None:
            tick, at, state = known
            trusted = time.monotonic() - at < RECHECK
            for write_tick, write_at in (_writes.get(key[0], (0, 0.0)), _everything):
                if write_tick and (write_tick > tick or at - write_at < SETTLE):
                    trusted = False
            if trusted:
                return state
    return read(run_id, user_id, arena)


def watched(run_id) -> bool:
    """Whether a page of the run polled this process within `WATCHING` seconds: someone
    is looking, so its results' thumbnails are worth making at once (compare/tasks.py)."""
    with _lock:
        return time.monotonic() - _polled.get(str(run_id), -WATCHING) < WATCHING


def _now() -> tuple[int, float]:
    with _lock:
        return _tick, time.monotonic()


def _remember(key: tuple, read_at: tuple[int, float], state: State) -> None:
    tick, at = read_at
    with _lock:
        _known[key] = (tick, at, state)
        if len(_known) > 2000 or len(_writes) > 2000 or len(_polled) > 2000:
            now = time.monotonic()
            for stale in [k for k, (_, seen, _) in _known.items() if now - seen > RECHECK]:
                del _known[stale]
            for run in [k for k, (_, done) in _writes.items() if now - done > RECHECK + SETTLE]:
                del _writes[run]
            for run in [k for k, seen in _polled.items() if now - seen > WATCHING]:
                del _polled[run]


def changed(run_id=None) -> None:
    """This process wrote to the run (to some runs, when `run_id` is None). A remembered
    state read before the write, or within `SETTLE` seconds after it (the write's
    transaction may not have committed yet), is read again; other processes are told
    when the write commits (compare/livefeed.py)."""
    _mark(run_id, time.monotonic())
    livefeed.publish(run_id)


def heard(run_id=None) -> None:
    """Another process's write to the run (to every run, with None) has committed, so
    one more read sees it: the next poll reads the run once, with no settling time."""
    _mark(run_id, time.monotonic() - SETTLE)


def _mark(run_id, at: float) -> None:
    global _tick, _everything
    with _lock:
        _tick += 1
        if run_id is None:
            _everything = (_tick, max(at, _everything[1]))
        else:
            key = str(run_id)
            _writes[key] = (_tick, max(at, _writes.get(key, (0, 0.0))[1]))


def forget() -> None:
    """Drop everything remembered (tests)."""
    global _everything
    with _lock:
        _known.clear()
        _writes.clear()
        _polled.clear()
        _everything = (0, 0.0)


# --- the poll's key ------------------------------------------------------------------


def poll_key(run_id, user_id) -> str:
    """A signed key for the page's poll URL: who polls which run, so that a "nothing new"
    answer needs no session. It tells its holder nothing but that something changed;
    drawing the changes takes that user's session."""
    return signing.dumps([str(run_id), user_id], salt=_SALT, compress=False)


def poller(key: str, run_id) -> int | None:
    """The user id of a valid poll key for this run, else None."""
    try:
        signed_run, user_id = signing.loads(key, salt=_SALT, max_age=KEY_MAX_AGE)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if signed_run != str(run_id) or not isinstance(user_id, int):
        return None
    return user_id


# --- writes through the models -------------------------------------------------------


@receiver(post_save, sender=Generation)
@receiver(post_save, sender=Note)
@receiver(post_delete, sender=Note)
@receiver(post_save, sender=Vote)
@receiver(post_save, sender=Reveal)
def _run_row_saved(sender, instance, **kwargs) -> None:
    changed(instance.run_id)


@receiver(post_save, sender=Image)
def _image_saved(sender, instance: Image, **kwargs) -> None:
    # The generation is at hand when a task stores an image; otherwise say "some run".
    gen = instance.generation if Image.generation.is_cached(instance) else None
    changed(gen.run_id if gen is not None else None)
