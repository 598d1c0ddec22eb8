"""Forms of the judging side of a run: votes, ratings, notes, tags."""

import re

from django import forms

from compare import text
from compare.judging import blind
from compare.models import Criterion, Generation, Note, Run, Tag, Vote
from compare.parsing import parse_whole_number
from compare.text import TextField

TAG = re.compile(r"^[\w-]{1,40}$", re.UNICODE)


class VoteForm(forms.Form):
    """A vote as posted: `choice` is one of blind.vote_choices' values; clean, it is
    the (verdict, winner) pair that runs.cast_vote stores. A verdict the run does not
    offer (a side without an image voted better, a tie with one image) is refused."""

    choice = forms.CharField(max_length=20)

    def __init__(self, *args, run: Run, arena: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.run, self.arena = run, arena

    def clean_choice(self) -> tuple[Vote.Verdict, Generation | None]:
        read = blind.read_choice(self.run, self.cleaned_data["choice"], self.arena)
        if read is None:
            raise forms.ValidationError("That is not one of this run's choices.")
        problem = blind.vote_problem(self.run, *read)
        if problem:
            raise forms.ValidationError(problem)
        return read


def parse_ratings(data, criteria: list[Criterion]) -> tuple[dict[Criterion, int], list[str]]:
    """The `stars-<criterion id>` fields of a ratings form: {criterion: stars} and problems.

    The whole form is posted (htmx on change, or the Save button without JS), so
    every criterion the user has rated so far is saved again, idempotently."""
    ratings, problems = {}, []
    for criterion in criteria:
        raw = data.get(f"stars-{criterion.id}")
        if raw in (None, ""):
            continue
        stars = parse_whole_number(raw, minimum=1, maximum=5)
        if stars is None:
            problems.append(f"{criterion.name}: give 1 to 5 stars.")
            continue
        ratings[criterion] = stars
    return ratings, problems


class NoteForm(forms.ModelForm):
    """A note on a run, optionally pinned to one of its generations."""

    body = TextField(
        label="Note",
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Add a note for the team…"}),
        error_messages={"required": "A note cannot be empty."},
    )
    generation = forms.ModelChoiceField(queryset=Generation.objects.none(), required=False, label="About")

    class Meta:
        model = Note
        fields = ["body", "generation"]
        widgets = {"body": forms.Textarea(attrs={"rows": 2, "placeholder": "Add a note for the team…"})}
        labels = {"body": "Note"}
        error_messages = {"body": {"required": "A note cannot be empty."}}

    def __init__(self, *args, run: Run | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        generation = self.fields["generation"]
        if run is not None and isinstance(generation, forms.ModelChoiceField):
            generation.queryset = run.generations.all()

    def clean_body(self) -> str:
        body = self.cleaned_data["body"].strip()
        if not body:
            raise forms.ValidationError("A note cannot be empty.")
        if len(body) > 10_000:
            raise forms.ValidationError("A note may be at most 10,000 characters.")
        return body


def parse_tags(raw: str) -> list[str]:
    """'poster, UI-mockup zh' → ['poster', 'ui-mockup', 'zh']; raises on a bad tag."""
    raw = text.clean(raw or "", label="Tags")
    names = [t.strip().lstrip("#").lower() for t in re.split(r"[,\s]+", raw or "") if t.strip()]
    bad = [n for n in names if not TAG.match(n)]
    if bad:
        raise forms.ValidationError(f"Tags are single words of letters, digits, - or _ (at most 40): {', '.join(bad)}.")
    if len(names) > 20:
        raise forms.ValidationError("At most 20 tags.")
    return list(dict.fromkeys(names))


class TagsForm(forms.Form):
    add = forms.CharField(required=False, max_length=400, label="Add tags")
    remove = forms.CharField(required=False, max_length=40)

    def clean_add(self) -> list[str]:
        return parse_tags(self.cleaned_data.get("add", ""))

    def apply(self, run: Run) -> None:
        for name in self.cleaned_data["add"]:
            run.tags.add(Tag.objects.get_or_create(name=name)[0])
        if self.cleaned_data.get("remove"):
            run.tags.remove(*Tag.objects.filter(name=self.cleaned_data["remove"]))
