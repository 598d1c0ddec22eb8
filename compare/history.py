"""Finding a comparison again: search, filters and sort for the history page and
its exports. Everything is built as QuerySet expressions, so the database does
the filtering and pagination counts exactly the rows a page will show.

The viewer matters: filters that would tell which models a blind run holds
(model, winner) only look at runs whose names this viewer may see, and rows of
the other blind runs carry side letters instead of model names."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet

from compare.judging import blind
from compare.models import Generation, Image, Run, Tag, Vote

STATUS_CHOICES = [("running", "Running"), ("done", "Done"), ("partial", "Partly failed"), ("failed", "Failed")]
SORT_CHOICES = [("newest", "Newest first"), ("oldest", "Oldest first"), ("discussed", "Most discussed")]
VOTED_CHOICES = [("", "Voted or not"), ("yes", "Voted by me"), ("no", "Not voted by me")]
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
    )
