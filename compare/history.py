"""Finding a comparison again: search, filters and sort for the history page and
its exports. Everything is built as QuerySet expressions, so the database does
the filtering and pagination counts exactly the rows a page will show.

The viewer matters: filters that would tell which models a blind run holds
(model, winner) only look at runs whose names this viewer may see, and rows of
the other blind runs carry side letters instead of model names."""

from dataclasses import dataclass
from decimal import Decimal

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Concat

from compare.judging import blind
from compare.models import Generation, Image, Note, Reveal, Run, Tag, Vote

STATUS_CHOICES = [("running", "Running"), ("done", "Done"), ("partial", "Partly failed"), ("failed", "Failed")]
SORT_CHOICES = [("newest", "Newest first"), ("oldest", "Oldest first"), ("discussed", "Most discussed")]
VOTED_CHOICES = [("", "Voted or not"), ("yes", "Voted by me"), ("no", "Not voted by me")]
ORDERINGS = {
    "newest": ["-created_at", "-pk"],
    "oldest": ["created_at", "pk"],
    "discussed": ["-discussion", "-created_at", "-pk"],
}
PENDING = [Generation.Status.QUEUED, Generation.Status.RUNNING]


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
        super().__init__(*args, label_suffix="", **kwargs)
        # Keys from the history, not the registry: retired models must stay findable.
        labels = dict(Generation.objects.order_by("model_key", "queued_at").values_list("model_key", "model_label"))
        models = sorted(labels.items(), key=lambda item: item[1].lower())
        username = get_user_model().USERNAME_FIELD
        authors = get_user_model().objects.filter(runs__isnull=False).distinct().order_by(username)
        names = list(authors.values_list(username, flat=True))
        self.fields["model"].choices = [("", "Any model"), *models]
        self.fields["winner"].choices = [("", "Any winner"), *models]
        self.fields["author"].choices = [("", "Anyone"), *((n, n) for n in names)]
        self.fields["tag"].choices = [("", "Any tag"), *((t, t) for t in Tag.objects.values_list("name", flat=True))]

    def clean(self) -> dict:
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "“To” is before “From”.")
        return data


def _count(model, **filters) -> Coalesce:
    """A correlated COUNT: unlike Count() over joins it does not multiply with other joins."""
    rows = model.objects.filter(run=OuterRef("pk"), **filters).order_by().values("run")
    return Coalesce(Subquery(rows.annotate(n=Count("pk")).values("n")), 0, output_field=IntegerField())


def annotated(user) -> QuerySet:
    """Every run with what the history shows and filters on, for this viewer."""
    gens = Generation.objects.filter(run=OuterRef("pk"))
    # The same rule as Run.status, in SQL so a status filter paginates correctly.
    status = Case(
        When(~Exists(gens), then=Value("empty")),
        When(Exists(gens.filter(status__in=PENDING)), then=Value("running")),
        When(~Exists(gens.exclude(status=Generation.Status.SUCCEEDED)), then=Value("done")),
        When(Exists(gens.filter(status=Generation.Status.SUCCEEDED)), then=Value("partial")),
        default=Value("failed"),
        output_field=CharField(),
    )
    return Run.objects.annotate(
        status_value=status,
        notes_total=_count(Note),
        votes_total=_count(Vote),
        voted_by_me=Exists(Vote.objects.filter(run=OuterRef("pk"), user=user)),
        revealed_to_me=Exists(Reveal.objects.filter(run=OuterRef("pk"), user=user)),
    ).annotate(discussion=F("notes_total") + F("votes_total"))


def names_visible() -> Q:
    """Runs whose model names the viewer of `annotated(user)` may see (blind.names_hidden in SQL)."""
    return Q(blind=False) | Q(voted_by_me=True) | Q(revealed_to_me=True)


def includes_model(key: str) -> Exists:
    return Exists(Generation.objects.filter(run=OuterRef("pk"), model_key=key))


def won_by(key: str) -> Exists:
    """A vote "gen:<position>" where the generation at that position is `key`."""
    sides = Generation.objects.filter(run=OuterRef("pk"), model_key=key).annotate(
        as_choice=Concat(Value("gen:"), Cast("position", CharField()), output_field=CharField())
    )
    return Exists(sides.filter(Exists(Vote.objects.filter(run=OuterRef("run"), choice=OuterRef("as_choice")))))


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
    finals = Prefetch("images", queryset=Image.objects.filter(is_partial=False))
    return runs.select_related("author").prefetch_related(
        Prefetch("generations", queryset=Generation.objects.prefetch_related(finals)), "votes", "tags"
    )


@dataclass
class HistoryRow:
    run: Run
    sides: list[Generation]  # display order, each with `display_name` for this viewer
    hidden: bool  # model names hidden from this viewer
    status: str
    votes: int
    notes: int
    tally: list[tuple[str, int]]  # the choices that got votes; empty while hidden (it tells sides apart)
    cost: Decimal | None  # None while hidden: prices tell the models apart


def _tally(run: Run, sides: list[Generation]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for vote in run.votes.all():
        counts[vote.choice] = counts.get(vote.choice, 0) + 1
    named = [(g.display_name, counts.get(f"gen:{g.position}", 0)) for g in sides]
    everything = [*named, ("Tie", counts.get(Vote.TIE, 0)), ("All bad", counts.get(Vote.ALL_BAD, 0))]
    return [(name, n) for name, n in everything if n]


def row(run: Run) -> HistoryRow:
    """A run from `with_rows(annotated(user))` as its viewer may see it.

    blind.prepare would ask the database for a Reveal once per blind run; the
    annotations already hold that answer, so only the labelling is done here,
    with blind's own functions (tests check both rules agree)."""
    hidden = run.blind and not (run.voted_by_me or run.revealed_to_me)
    sides = run.ordered_generations()
    for gen in sides:
        gen.run = run
        gen.display_name = blind.label(gen, hidden)
    return HistoryRow(
        run=run,
        sides=sides,
        hidden=hidden,
        status=run.status_value,
        votes=run.votes_total,
        notes=run.notes_total,
        tally=[] if hidden else _tally(run, sides),
        cost=None if hidden else run.total_cost,
    )
