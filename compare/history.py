"""Finding a comparison again: search, filters and sort for the history page and
its exports. Everything is built as QuerySet expressions, so the database does
the filtering and pagination counts exactly the rows a page will show.

The viewer matters: filters that would tell which models a blind run holds
(model, winner) only look at runs whose names this viewer may see, and rows of
the other blind runs carry side letters instead of model names."""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from compare.budget import _charged
from compare.checks import report
from compare.judging import blind
from compare.models import Generation, Image, Run, Tag, Vote

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
        # Keys from the history, not the registry: retired models must stay findable.
        labels = dict(Generation.objects.order_by("model_key", "queued_at").values_list("model_key", "model_label"))
        models = sorted(labels.items(), key=lambda item: item[1].lower())
        username = get_user_model().USERNAME_FIELD
        authors = get_user_model().objects.filter(runs__isnull=False).distinct().order_by(username)
        names = list(authors.values_list(username, flat=True))
        choices = {
            "model": [("", "Any model"), *models],
            "winner": [("", "Any winner"), *models],
            "author": [("", "Anyone"), *((n, n) for n in names)],
            "tag": [("", "Any tag"), *((t, t) for t in Tag.objects.values_list("name", flat=True))],
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
    f = form.cleaned_data
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
        runs = runs.filter(status_value=f["status"])
    if f["date_from"]:
        runs = runs.filter(created_at__date__gte=f["date_from"])
    if f["date_to"]:
        runs = runs.filter(created_at__date__lte=f["date_to"])
    if f["voted"]:
        runs = runs.filter(voted_by_me=f["voted"] == "yes")
    if f["checks"]:
        runs = runs.filter(Exists(Generation.objects.filter(CHECK_FILTERS[f["checks"]], run=OuterRef("pk"))))
    return runs.order_by(*ORDERINGS[f["sort"] or "newest"])


def with_rows(runs: QuerySet) -> QuerySet:
    """Everything a row shows, in a fixed number of queries per page."""
    finals = Prefetch("generations__images", queryset=Image.objects.filter(is_partial=False))
    return runs.select_related("author").prefetch_related(finals, "tags")


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
    # The automatic checks in one badge (compare/checks/report.py `run_outcome`).
    checks: tuple[str, str, str] = ("", "", "")


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
        checks=report.run_outcome(sides),
    )


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


def activity(form: HistoryFilters, user, today: date | None = None) -> Activity:
    """Runs and spend per day of the runs the form selects, in two queries however many
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
    runs = filtered(form, user).order_by().prefetch_related(None)
    runs = runs.filter(created_at__date__gte=first, created_at__date__lte=last)
    counts: dict[date, list] = {}
    for day, n, hidden in (
        runs.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("pk"), hidden=Count("pk", filter=Q(names_hidden=True)))
        .values_list("day", "n", "hidden")
    ):
        counts[day] = [n, hidden, 0.0]
    spend = (
        Generation.objects.filter(run__in=runs.filter(names_hidden=False).values("pk"))
        .annotate(day=TruncDate("run__created_at"))
        .values("day")
        .annotate(total=Sum(_charged()))
        .order_by()
        .values_list("day", "total")
    )
    for day, total in spend:
        counts.setdefault(day, [0, 0, 0.0])[2] = float(total or 0)
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
