"""Finding a comparison again: search, filters and sort for the history page and
its exports. Everything is built as QuerySet expressions, so the database does
the filtering and pagination counts exactly the rows a page will show.

The viewer matters: filters that would tell which models a blind run holds
(model, winner) only look at runs whose names this viewer may see, and rows of
the other blind runs carry side letters instead of model names."""

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import router
from django.db.models import (
    Count,
    DateField,
    DecimalField,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    StringAgg,
    Subquery,
    Sum,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, TruncDate
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import get_language

from compare import registry
from compare.budget import _charged
from compare.checks import report
from compare.judging import blind
from compare.models import Generation, Image, Run, Tag, Vote, count_of
from compare.precompiled import Precompiled, attach_grouped, prep_of

STATUS_CHOICES = [("running", "Running"), ("done", "Done"), ("partial", "Partly failed"), ("failed", "Failed")]
SORT_CHOICES = [("newest", "Newest first"), ("oldest", "Oldest first"), ("discussed", "Most discussed")]
VOTED_CHOICES = [("", "Voted or not"), ("yes", "Voted by me"), ("no", "Not voted by me")]
# The automatic checks (compare/checks/): a run matches when any of its sides has that outcome.
CHECK_CHOICES = [
    ("", "Any checks"),
    ("passed", "Passed"),
    ("failed", "Failed"),
    ("text_failed", "Text check failed"),
    ("unavailable", "Unavailable"),
]
# What each choice asks of at least one generation of the run.
CHECK_FILTERS = {
    "passed": Q(check_status=Generation.CheckStatus.PASSED),
    "failed": Q(check_status=Generation.CheckStatus.FAILED),
    "text_failed": Q(check_status=Generation.CheckStatus.FAILED, checks__text_failed=True),
    "unavailable": Q(check_status=Generation.CheckStatus.UNAVAILABLE),
}
ORDERINGS = {
    "newest": ["-created_at", "-pk"],
    "oldest": ["created_at", "pk"],
    "discussed": ["-discussion", "-created_at", "-pk"],
}


class HistoryFilters(forms.Form):
    """The query string of the history page and its exports (GET, so links can be shared)."""

    q = forms.CharField(
        required=False,
        max_length=200,
        label="Search prompts",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "words in the prompt"}),
    )
    model = forms.ChoiceField(required=False, label="Model")
    winner = forms.ChoiceField(required=False, label="Won a vote")
    author = forms.ChoiceField(required=False, label="Author")
    tag = forms.ChoiceField(required=False, label="Tag")
    status = forms.ChoiceField(required=False, label="Status", choices=[("", "Any status"), *STATUS_CHOICES])
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    voted = forms.ChoiceField(required=False, label="My vote", choices=VOTED_CHOICES)
    checks = forms.ChoiceField(required=False, label="Checks", choices=CHECK_CHOICES)
    sort = forms.ChoiceField(required=False, label="Sort", choices=SORT_CHOICES)

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.lists = lists = choice_lists()
        models = lists.models
        choices = {
            "model": [("", "Any model"), *models],
            "winner": [("", "Any winner"), *models],
            "author": [("", "Anyone"), *((n, n) for n in lists.authors)],
            "tag": [("", "Any tag"), *((t, t) for t in lists.tags)],
        }
        for name, options in choices.items():
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)  # declared above
            field.choices = options

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "“To” is before “From”.")
        return data


# --- the filters' choices, without a scan of every generation per request ------------

CHOICES_KEY = "compare:history-choices"
CHOICES_TTL = 300  # seconds; another process's new author or tag shows after this at the latest


@dataclass(frozen=True)
class ChoiceLists:
    models: list[tuple[str, str]]  # (key, label), by label: the registry's models and those in the history
    authors: list[str]  # usernames of people with runs
    tags: list[str]


def choice_lists() -> ChoiceLists:
    """The filters' choices: the registry's enabled models plus every model key the history
    holds (retired models must stay findable), the authors of runs and the tags. What needs
    the database is kept in the cache (settings.CACHES: per process, or shared through
    REDIS_URL) and dropped by the writes that change it (the signals below)."""
    cached = cache.get(CHOICES_KEY)
    if not isinstance(cached, dict):
        username = get_user_model().USERNAME_FIELD
        authors = get_user_model().objects.filter(Exists(Run.objects.filter(author=OuterRef("pk"))))
        cached = {
            # One label per key: the newest one the history has.
            "history": dict(
                Generation.objects.order_by("model_key", "queued_at").values_list("model_key", "model_label")
            ),
            "authors": list(authors.order_by(username).values_list("pk", username)),
            "tags": list(Tag.objects.order_by("name").values_list("name", flat=True)),
        }
        cache.set(CHOICES_KEY, cached, CHOICES_TTL)
    labels = {**cached["history"], **{m.key: m.label for m in registry.enabled_models()}}
    return ChoiceLists(
        models=sorted(labels.items(), key=lambda item: item[1].lower()),
        authors=[name for _, name in cached["authors"]],
        tags=cached["tags"],
    )


def forget_choices() -> None:
    cache.delete(CHOICES_KEY)


@receiver(post_save, sender=Generation)
def _generation_saved(sender, instance: Generation, created: bool, **kwargs) -> None:
    if not created:  # most saves: no cache read (a round trip where the cache is Redis)
        return
    cached = cache.get(CHOICES_KEY)
    if isinstance(cached, dict) and instance.model_key not in cached["history"]:
        forget_choices()


@receiver(post_save, sender=Run)
def _run_saved(sender, instance: Run, created: bool, **kwargs) -> None:
    if not created:
        return
    cached = cache.get(CHOICES_KEY)
    if isinstance(cached, dict) and instance.author_id not in {pk for pk, _ in cached["authors"]}:
        forget_choices()


@receiver(post_delete, sender=Run)
@receiver(post_save, sender=Tag)
@receiver(post_delete, sender=Tag)
@receiver(post_save, sender=settings.AUTH_USER_MODEL)
@receiver(post_delete, sender=settings.AUTH_USER_MODEL)
def _choices_changed(sender, **kwargs) -> None:
    forget_choices()


def annotated(user) -> QuerySet:
    """Every run with what the history shows and filters on, for this viewer
    (status, names hidden, tally: see RunQuerySet.for_viewer)."""
    return Run.objects.for_viewer(user).annotate(discussion=F("notes_total") + F("votes_total"))


def names_visible() -> Q:
    """Runs of `annotated(user)` whose model names the viewer may see."""
    return Q(names_hidden=False)


def includes_model(key: str) -> Exists:
    return Exists(Generation.objects.filter(run=OuterRef("pk"), model_key=key))


def won_by(key: str) -> Exists:
    """Someone voted a generation of model `key` the better side."""
    return Exists(Vote.objects.filter(run=OuterRef("pk"), winner__model_key=key))


def on_days(first: date | None, last: date | None) -> Q:
    """Runs created from the start of `first` to the end of `last` (local days), as a range
    of `created_at` that its index serves (a `__date` lookup would compute each row's date).
    The first and last days a date can hold are left open: their bounds may not exist."""
    bounds = Q()
    if first and first > date.min + timedelta(days=1):
        bounds &= Q(created_at__gte=timezone.make_aware(datetime.combine(first, datetime.min.time())))
    if last and last < date.max - timedelta(days=1):
        bounds &= Q(created_at__lt=timezone.make_aware(datetime.combine(last + timedelta(days=1), datetime.min.time())))
    return bounds


def search(runs: QuerySet, text: str) -> QuerySet:
    """Every word must occur in the prompt, in any case and order."""
    for word in text.split():
        runs = runs.filter(prompt__icontains=word)
    return runs


def filtered(form: HistoryFilters, user) -> QuerySet:
    """The runs the form asks for, ordered; none when the query string is invalid
    (a shared link with an unknown tag must not silently show everything)."""
    if not form.is_valid():
        return Run.objects.none()
    return _filtered(form.cleaned_data, user)


def _filtered(f: dict[str, Any], user) -> QuerySet:
    """`filtered` from the form's cleaned data (`user`: a user or a user id)."""
    runs = search(annotated(user), f["q"])
    if f["model"] or f["winner"]:
        runs = runs.filter(names_visible())
    if f["model"]:
        runs = runs.filter(includes_model(f["model"]))
    if f["winner"]:
        runs = runs.filter(won_by(f["winner"]))
    if f["author"]:
        runs = runs.filter(**{f"author__{get_user_model().USERNAME_FIELD}": f["author"]})
    if f["tag"]:
        runs = runs.filter(Exists(Run.tags.through.objects.filter(run=OuterRef("pk"), tag__name=f["tag"])))
    if f["status"]:
        runs = runs.filter(state=f["status"])
    runs = runs.filter(on_days(f["date_from"], f["date_to"]))
    if f["voted"]:
        runs = runs.filter(voted_by_me=f["voted"] == "yes")
    if f["checks"]:
        runs = runs.filter(Exists(Generation.objects.filter(CHECK_FILTERS[f["checks"]], run=OuterRef("pk"))))
    return runs.order_by(*ORDERINGS[f["sort"] or "newest"])


# --- pages: keyset pagination ---------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BAD_CURSOR = "That page link is not valid (any more): here are the first results."


def _micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def cursor(run: Run, sort: str) -> str:
    """Where a page ends (or starts), as its last (first) row's sort key: the discussion
    count for "discussed", then the creation time in microseconds and the run id."""
    key = f"{_micros(run.created_at)}_{run.pk.hex}"
    return f"{run.discussion}_{key}" if sort == "discussed" else key  # type: ignore[attr-defined]  # `annotated`


def parse_cursor(text: str, sort: str) -> list | None:
    """The sort key values of a cursor (as `ORDERINGS[sort]` lists them), or None when it
    is not one: a link edited by hand or made for another sort."""
    parts = text.split("_")
    if len(parts) != (3 if sort == "discussed" else 2) or len(text) > 80:
        return None
    try:
        numbers = [int(p) for p in parts[:-1]]  # the discussion count, then microseconds since 1970
        if any(n < 0 for n in numbers):
            return None
        return [*numbers[:-1], EPOCH + timedelta(microseconds=numbers[-1]), uuid.UUID(hex=parts[-1])]
    except (ValueError, OverflowError):
        return None


def _beyond(ordering: list[str], values: list, forward: bool) -> Q:
    """Rows after the key `values` in `ordering` (before it when not `forward`): a
    lexicographic comparison written out, so that every database can use the indexes."""
    result = Q(pk__in=[])
    for i, key in enumerate(ordering):
        name, descending = key.lstrip("-"), key.startswith("-")
        step = Q(**{f"{name}__{'lt' if descending == forward else 'gt'}": values[i]})
        for prev, value in zip(ordering[:i], values[:i], strict=True):
            step &= Q(**{prev.lstrip("-"): value})
        result |= step
    return result


def _reverse(ordering: list[str]) -> list[str]:
    return [key[1:] if key.startswith("-") else f"-{key}" for key in ordering]


@dataclass
class HistoryPage:
    """One page of results: the runs, how many match, and the cursors of the pages on
    either side (None at an end)."""

    runs: list[Run]
    count: int  # counted up to COUNT_UP_TO + 1: "more than" past that
    number: int  # for "Page 2 of 9": counted along by the links, 1 on a first page
    pages: int | None  # None when the count stopped at COUNT_UP_TO
    newer: str | None
    older: str | None
    note: str = ""  # why the first page is shown instead of the one asked for

    @property
    def has_other_pages(self) -> bool:
        return bool(self.newer or self.older)

    @property
    def more_than(self) -> bool:
        return self.pages is None


# Matching runs are counted up to this many (counting them all costs a scan of each one).
COUNT_UP_TO = 1000


def _window(runs: QuerySet, sort: str, values: list | None, forward: bool, per_page: int) -> QuerySet:
    """The runs of one page of `runs` (ordered by `_filtered`) and one more (whether more
    follow), each with `matching`: how many runs match, up to COUNT_UP_TO + 1, counted by
    the database along with the page. `values`: the cursor's sort key, None on a first page."""
    # COUNT(*) over the first COUNT_UP_TO + 1 matching ids, as a FROM subquery: with `id IN
    # (those ids)` PostgreSQL scanned every run to count them (30 ms at 100k runs).
    first_ones = runs.order_by().prefetch_related(None).values("pk")[: COUNT_UP_TO + 1]
    sql, params = first_ones.query.get_compiler(using=runs.db).as_sql()
    total = RawSQL(f"SELECT COUNT(*) FROM ({sql}) matching_runs", params, output_field=IntegerField())
    window = runs.annotate(matching=total)
    if values is not None:
        ordering = ORDERINGS[sort]
        window = window.filter(_beyond(ordering, values, forward))
        if not forward:
            window = window.order_by(*_reverse(ordering))
    return window[: per_page + 1]


def paginate(form: HistoryFilters, user, params, per_page: int) -> HistoryPage:
    """The page of the runs the form selects for `user` that the `after` or `before` cursor
    of `params` asks for, found through the index instead of by counting rows from the
    first: page 200 costs what page 1 does. A cursor that is not one gives the first page
    and a note, never an error. `page` only numbers the page (links count it along). Each
    run comes with what its row shows (`with_rows`)."""
    sort = (form.cleaned_data.get("sort") if form.is_valid() else "") or "newest"
    after, before = params.get("after"), params.get("before")
    values = parse_cursor(after or before, sort) if (after or before) else None
    note = BAD_CURSOR if (after or before) and values is None else ""
    forward = bool(after) or values is None
    found = _page_runs(form, user, sort, values, forward, per_page)
    if values is None:
        count = _matching(found[0]) if found else 0
        older = cursor(found[per_page - 1], sort) if len(found) > per_page else None
        return HistoryPage(_rows_of(found[:per_page], per_page), count, 1, _pages(count, per_page), None, older, note)
    more = len(found) > per_page
    found = found[:per_page]
    if not forward:
        found.reverse()
    if not found:  # past an end (the runs were deleted): start again
        first = paginate(form, user, {}, per_page)
        first.note = BAD_CURSOR
        return first
    count = _matching(found[0])
    pages = _pages(count, per_page)
    newer = cursor(found[0], sort) if (more or forward) else None
    older = cursor(found[-1], sort) if (more or not forward) else None
    try:
        number = min(max(int(params.get("page", "")), 2), pages or 10**9) if newer else 1
    except ValueError:
        number = 2
    return HistoryPage(_rows_of(found, per_page), count, number, pages, newer, older, note)


class _Kept:
    """What was made for a key, kept in this process for the `size` keys used most lately.
    Threads share it; two that miss the same key at once may both make it (the same thing)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        made = make()
        with self._lock:
            self._items[key] = made
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return made

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# --- the page's statements, compiled once per shape (compare/precompiled.py) ----------------
# Building and compiling the page's query costs several times what SQLite takes to run it.
# A page's SQL depends on which filters are set (and the sort, the direction and the voted
# and checks choices), not on their values: one compiled statement per such shape, its values
# put in as parameters. Search words and dates change the SQL's shape with their values; a
# page with those is compiled as it is asked for.

VALUE_FILTERS = ("model", "winner", "author", "tag", "status")  # each one parameter
_USER_STAND_IN = -424244
_CURSOR_STAND_INS: list = [
    (-31313, None),  # a "discussed" cursor's count of votes and notes
    (datetime(1971, 2, 3, 4, 5, 6, 70809, tzinfo=UTC), prep_of(Run, "created_at")),
    (uuid.UUID("00000000-0000-4000-8000-00000000ca11"), prep_of(Run, "id")),
]
SHAPES_KEPT = 256  # of some 4,300 possible shapes, the ones in use
_pages_compiled = _Kept(SHAPES_KEPT)


def _shape(f: dict[str, Any], sort: str, values: list | None, forward: bool, per_page: int) -> tuple | None:
    if f["q"].strip() or f["date_from"] or f["date_to"]:
        return None
    named = tuple(name for name in VALUE_FILTERS if f[name])
    return named, f["voted"], f["checks"], sort, values is None, forward, per_page


def _page_runs(form: HistoryFilters, user, sort: str, values: list | None, forward: bool, per_page: int) -> list:
    """The page's runs and one more, with their authors, tags and `matching`: by the
    statement compiled for the page's shape, or built now for a shape that has none."""
    if not form.is_valid():
        return []
    f = form.cleaned_data
    shape = _shape(f, sort, values, forward, per_page)
    if shape is None:
        return list(_window(with_rows(_filtered(f, user)).prefetch_related(None), sort, values, forward, per_page))
    named = shape[0]

    def compile_shape() -> Precompiled:
        cursor_stand_ins = [] if values is None else _CURSOR_STAND_INS[-len(values) :]

        def build(user_id, *given):
            fixed = {**f, **dict(zip(named, given, strict=False))}
            page_values = list(given[len(named) :]) or None
            runs = with_rows(_filtered(fixed, user_id)).prefetch_related(None)
            return _window(runs, sort, page_values, forward, per_page)

        stand_ins = [(f"\x1fstand-in {name}", None) for name in named]
        return Precompiled(build, [(_USER_STAND_IN, None), *stand_ins, *cursor_stand_ins])

    compiled = _pages_compiled.get_or_make(shape, compile_shape)
    return compiled.objects(router.db_for_read(Run), user.pk, *(f[name] for name in named), *(values or []))


_sides_compiled: dict[int, tuple[Precompiled, Precompiled]] = {}
ROW_SKIPS = ("attempt_log", "usage", "params_sent", "params_echoed", "text", "grounding")


def _rows_of(runs: list, per_page: int) -> list:
    """`runs` with their sides (and each side's wins) and their final images, as `with_rows`
    prefetches them: two statements compiled once per page size (the runs' ids padded to it)."""
    if not runs:
        return runs
    if per_page not in _sides_compiled:
        stand_ins = [(uuid.UUID(int=0xC0FFEE0000 + i), prep_of(Run, "id")) for i in range(per_page)]
        # A row shows no attempt log, usage, parameters, text or grounding: their JSON is not read.
        every_side = Generation.objects.annotate(**{"wins_total": count_of(Vote, "winner")}).defer(*ROW_SKIPS)
        _sides_compiled[per_page] = (
            Precompiled(lambda *ids: every_side.filter(run_id__in=ids), stand_ins),
            Precompiled(lambda *ids: Image.objects.filter(is_partial=False, generation__run_id__in=ids), stand_ins),
        )
    sides_query, images_query = _sides_compiled[per_page]
    ids = [run.pk for run in runs]
    ids += ids[:1] * (per_page - len(ids))
    alias = router.db_for_read(Run)
    sides = sides_query.objects(alias, *ids)
    attach_grouped(sides, "images", images_query.objects(alias, *ids), "generation_id")
    attach_grouped(runs, "generations", sides, "run_id")
    return runs


def _matching(run: Run) -> int:
    return run.matching  # type: ignore[attr-defined]  # annotated by `paginate`


def _pages(count: int, per_page: int) -> int | None:
    return None if count > COUNT_UP_TO else max(1, -(-count // per_page))


def with_rows(runs: QuerySet) -> QuerySet:
    """Everything a row shows, in a fixed number of queries per page."""
    finals = Prefetch("generations__images", queryset=Image.objects.filter(is_partial=False))
    # The tags' names ride along with the run's row, joined by a separator no name holds.
    names = Run.tags.through.objects.filter(run=OuterRef("pk")).order_by().values("run")
    aggregate = StringAgg("tag__name", Value(TAG_SEPARATOR))
    joined = names.annotate(joined=aggregate).values("joined")  # type: ignore[misc]  # stubs miss StringAgg
    return runs.select_related("author").prefetch_related(finals).annotate(tag_names=Subquery(joined))


TAG_SEPARATOR = "\x1f"  # the ASCII unit separator: never in a tag name (compare/judging/forms.py `parse_tags`)


@dataclass
class HistoryRow:
    run: Run
    sides: list[Generation]  # display order, each with `display_name` and `shown_images` for this viewer
    hidden: bool  # model names hidden from this viewer
    status: str
    votes: int
    notes: int
    tally: list[tuple[str, int]]  # the choices that got votes; empty while hidden (it tells sides apart)
    cost: Decimal | None  # None while hidden: prices tell the models apart
    cost_max: Decimal | None  # at most (some attempt may have been billed without usage), else None
    # The automatic checks in one badge (compare/checks/report.py `run_outcome`).
    checks: tuple[str, str, str] = ("", "", "")
    tags: list[str] = field(default_factory=list)  # names, sorted
    # Per side: its first shown image's small thumbnail for the list's slot, or "" (`list_thumbnail`).
    thumbs: list[str] = field(default_factory=list)
    url: str = ""  # the run page's

    def look(self) -> tuple:
        """Everything the row's markup shows (history.html#row reads nothing else): two
        rows with the same look are drawn the same."""
        run = self.run
        sides = tuple(
            (
                gen.display_name,
                gen.status,
                bool(gen.withheld),
                thumb,
                (gen.shown_images[0].width, gen.shown_images[0].height) if gen.shown_images else None,
            )
            for gen, thumb in self.thumbed
        )
        # The prompt as far as the row shows it (200 characters, and whether it goes on).
        facts = (run.pk, self.url, run.prompt[:201], run.blind, run.author.get_username(), run.created_at, self.status)
        return (*facts, self.checks, self.hidden, self.votes, tuple(self.tally), self.notes, tuple(self.tags), sides)

    @property
    def thumbed(self) -> list[tuple[Generation, str]]:
        """The sides with their small thumbnails, for the template."""
        return list(zip(self.sides, self.thumbs, strict=True))


def list_thumbnail(image) -> str:
    """The address of the small thumbnail (240 px WebP: sharp in the 120 px slot of a list
    on a 2x screen) of an `Image` or a blind display copy (`BlindImage`)."""
    url = image.thumbnail_url
    return f"{url}{'&' if '?' in url else '?'}size=list"


def _tally(run: Run, sides: list[Generation]) -> list[tuple[str, int]]:
    named = [
        (choice.winner.display_name if choice.winner else choice.verdict.label, n)
        for choice, n in blind.tally(run, sides)
    ]
    return [(name, n) for name, n in named if n]


def row(run: Run, user) -> HistoryRow:
    """A run from `with_rows(annotated(user))` as `user` may see it: its sides set up by
    `blind.prepare`, like on the run page. While the names are hidden a side's
    `shown_images` are display copies (thumbnails addressed by run and side letter, never
    by the original's hash, which would fetch the original with its format, size and
    metadata), and none at all while any side still works (`withheld`)."""
    sides, hidden = blind.prepare(run, user)  # `names_hidden` is annotated: no query
    return HistoryRow(
        run=run,
        sides=sides,
        hidden=hidden,
        status=run.status,
        votes=run.votes_total,
        notes=run.notes_total,
        tally=[] if hidden else _tally(run, sides),
        cost=None if hidden else run.total_cost,
        cost_max=None if hidden else run.total_cost_max,
        checks=report.run_outcome(sides),
        tags=sorted(names.split(TAG_SEPARATOR)) if (names := getattr(run, "tag_names", None)) else [],
        thumbs=[list_thumbnail(gen.shown_images[0]) if gen.shown_images else "" for gen in sides],
        url=run.get_absolute_url(),
    )


# --- rows drawn once per look --------------------------------------------------------------
# Drawing a row takes the template engine about a millisecond, as long as everything else of
# a page together: each look of a row (`HistoryRow.look`: its content as this viewer sees it)
# is drawn once and kept, most recently used last, in this process.

ROWS_KEPT = 4096  # about 2 KB of markup each
_drawn = _Kept(ROWS_KEPT)


def row_html(rows: list[HistoryRow], eager: int) -> list[str]:
    """The markup of each row (history.html#row); rows after the first `eager` load their
    thumbnails lazily."""
    history_url = reverse("history")
    # Times are drawn in the active time zone and words in the active language.
    setting = (timezone.get_current_timezone_name(), get_language())
    drawn = []
    for index, item in enumerate(rows):
        lazy = index >= eager
        context = {"row": item, "lazy": lazy, "history_url": history_url}
        drawn.append(_drawn_once((item.look(), lazy, setting), "history.html#row", context))
    return drawn


def filters_html(form: HistoryFilters, data) -> str:
    """The filter form's markup (history.html#filters) for the query `data`, drawn once per
    query and choice lists: its widgets take the template engine several milliseconds."""
    if not form.is_valid():  # a hand-made query: drawn as it is, not kept
        return render_to_string("history.html#filters", {"form": form})
    lists = form.lists
    values = tuple((name, tuple(data.getlist(name))) for name in form.fields if name in data)
    key = ("filters", values, tuple(lists.models), tuple(lists.authors), tuple(lists.tags), get_language())
    return _drawn_once(key, "history.html#filters", {"form": form})


def _drawn_once(key: tuple, template: str, context: dict) -> str:
    """`template` drawn with `context`, or what it gave last time for the same `key`."""
    return _drawn.get_or_make(key, lambda: render_to_string(template, context))


def forget_drawn_rows() -> None:
    _drawn.clear()


# --- Runs and spend per day (the chart above the list) ------------------------------

DAYS_SHOWN = 30  # without dates in the filter: the last 30 days
DAILY_UP_TO = 92  # longer ranges are shown per week (Monday to Sunday)
CHART_DAYS_AT_MOST = 731  # a longer date filter charts its last two years (the list still has every run)


def _days_before(day: date, days: int) -> date:
    """`day` minus `days`, stopping at the first day a date can hold (year 1)."""
    return day - timedelta(days=min(days, (day - date.min).days))


@dataclass
class Activity:
    """Runs and spend of the filtered runs per day or week, oldest first."""

    bins: list[tuple[str, int, float]]  # (label, runs, spend in USD)
    per: str  # "Day" or "Week"
    first: date
    last: date
    unpriced: int  # runs counted whose spend is left out: names hidden from this viewer


def _local_day() -> Cast | TruncDate:
    """A run's local day, in SQL. With the site's time zone UTC, the database's own cast of the
    (UTC) timestamp to a date (SQLite's TruncDate is a Python function called per row)."""
    if settings.TIME_ZONE == "UTC":
        return Cast("created_at", DateField())
    return TruncDate("created_at")


def activity(form: HistoryFilters, user, today: date | None = None, runs: QuerySet | None = None) -> Activity:
    """Runs and spend per day of the runs the form selects, in one query however many
    runs there are: the filter's date range, else the last `DAYS_SHOWN` days. Spend is what
    the budget counts (compare/budget.py), and only of runs whose names this viewer may see:
    the history hides a blind run's cost until its names are shown (`row`)."""
    today = today or timezone.localdate()
    if not form.is_valid():  # the page shows the form's errors and no runs: no chart either
        return Activity([], "Day", today, today, 0)
    data = form.cleaned_data
    last = data.get("date_to") or (today if not data.get("date_from") else max(today, data["date_from"]))
    last = min(last, today + timedelta(days=1))  # no run is dated later; keeps the day loop off date.max
    first = max(data.get("date_from") or date.min, _days_before(last, CHART_DAYS_AT_MOST - 1))
    if not data.get("date_from"):
        first = _days_before(last, DAYS_SHOWN - 1)
    # `runs`: `filtered(form, user)` when the caller has it already (building it again costs time).
    runs = (filtered(form, user) if runs is None else runs).order_by().prefetch_related(None)
    runs = runs.filter(on_days(first, last))
    charged = Generation.objects.filter(run=OuterRef("pk")).order_by().values("run").annotate(total=Sum(_charged()))
    spent = Subquery(charged.values("total"), output_field=DecimalField(max_digits=12, decimal_places=4))
    counts: dict[date, list] = {}
    for day, n, hidden, total in (
        runs.annotate(day=_local_day())
        .values("day")
        .annotate(
            n=Count("pk"),
            hidden=Count("pk", filter=Q(names_hidden=True)),
            spend=Sum(spent, filter=Q(names_hidden=False)),
        )
        .values_list("day", "n", "hidden", "spend")
    ):
        counts[day] = [n, hidden, float(total or 0)]
    span = (last - first).days + 1
    weekly = span > DAILY_UP_TO
    bins: dict[date, list] = {}
    day = first
    while day <= last:
        key = day - timedelta(days=day.weekday()) if weekly else day
        n, hidden, money = counts.get(day, [0, 0, 0.0])
        total = bins.setdefault(key, [0, 0, 0.0])
        total[0], total[1], total[2] = total[0] + n, total[1] + hidden, total[2] + money
        day += timedelta(days=1)
    return Activity(
        bins=[(f"{key:%b} {key.day}", n, round(money, 4)) for key, (n, _, money) in bins.items()],
        per="Week" if weekly else "Day",
        first=first,
        last=last,
        unpriced=sum(hidden for _, hidden, _ in bins.values()),
    )
