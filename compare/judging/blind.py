"""Blind judging: in a blind run the sides are shuffled and named A, B, … and
nothing a viewer can see tells which model is which until that viewer has voted
(or asked to see the names). Every page, fragment, API reply and download of a
run goes through `prepare`; whether names are hidden is decided in one place,
`RunQuerySet.with_viewer` in compare/models.py.

Three promises hold for every viewer:

- **Sides never move.** A blind run shows its sides in their shuffled order, a run
  judged from the Judge queue (`arena`) in an order derived from its ids, and
  either order is the same before and after the viewer votes: voting only puts
  the names on the sides (`A · GPT Image 2`). Such sides are called by their
  letters everywhere, the verdict words included ("A better", never "Left").
- **Nothing but the pixels tells hidden sides apart.** While names are hidden a
  side shows no latency, cost, pixel size, file size or format, its images are
  display copies (compare/judging/blind_images.py), and while any side is still
  working no side shows anything (which side finished first is a latency too).
- **A vote means what the voter saw.** Only a side that delivered an image can be
  voted better, and only against another such side; a tie needs two such sides
  too; "all bad" needs one (`vote_choices` offers exactly these, `read_choice`
  and `vote_problem` refuse anything else).

This module is also the one place where the values a vote form or API client
posts ("gen:<position>", "side:<letter>", "tie", "all_bad") meet the stored
verdict: `vote_choices` writes them, `read_choice` reads them."""

import hashlib
from dataclasses import dataclass

from django.urls import reverse
from django.utils import timezone

from compare.judging import blind_images
from compare.judging.blind_images import BlindImage
from compare.models import Generation, Image, Run, Vote

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def names_hidden(run: Run, user, arena: bool = False) -> bool:
    """Hidden for a blind run (or any run judged from the arena queue) until this
    viewer has voted on it or seen the names. A run loaded with
    `Run.objects.for_viewer(user, arena=arena)` already carries the answer."""
    if hasattr(run, "names_hidden"):
        return run.names_hidden
    return Run.objects.with_viewer(user, arena=arena).values_list("names_hidden", flat=True).get(pk=run.pk)


def side_letter(gen: Generation) -> str:
    """The side's letter: set by `prepare` for this viewer, else from the blind order."""
    letter = getattr(gen, "side", None)
    return letter or LETTERS[gen.blind_position % len(LETTERS)]


def lettered(run: Run, arena: bool = False) -> bool:
    """Sides are called A, B, … (and keep that order once the names are shown)."""
    return run.blind or arena


def _order(run: Run, arena: bool) -> list[Generation]:
    """Display order. It depends on the run and on the page (run page or Judge queue),
    never on whether this viewer has voted: a reveal must not move a side."""
    generations = list(run.generations.all())
    if run.blind:
        return sorted(generations, key=lambda g: g.blind_position)
    if arena:
        # A run judged blind from the arena was not shuffled when it was made: derive a
        # stable order from the ids, so "Side A" is not always the first model picked.
        return sorted(generations, key=lambda g: hashlib.sha256(f"{run.pk}:{g.pk}".encode()).hexdigest())
    return sorted(generations, key=lambda g: g.position)


def label(gen: Generation, hidden: bool) -> str:
    letter = getattr(gen, "side", None) or (side_letter(gen) if gen.run.blind else None)
    if hidden:
        name = f"Side {letter or side_letter(gen)}"
    elif letter:
        name = f"{letter} · {gen.model_label}"
    else:
        name = gen.model_label
    original = gen.fallback_of
    if original is not None:
        # A fallback is never disguised as the side it stands in for.
        name += f" (fallback for {label(original, hidden)})"
    return name


def prepare(run: Run, user, arena: bool = False) -> tuple[list[Generation], bool]:
    """The run's generations in display order, each set up for this viewer:
    `display_name`, `side` (its letter, or None), `choice_value` (what voting it
    better posts), `withheld` (hidden and some side still working: show no outcome
    yet) and `shown_images` (the originals, or display copies while hidden)."""
    hidden = names_hidden(run, user, arena)
    generations = _order(run, arena)
    letters = lettered(run, arena)
    withheld = hidden and not all(g.is_terminal for g in generations)
    for index, gen in enumerate(generations):
        gen.run = run
        gen.side = LETTERS[index % len(LETTERS)] if letters else None
        gen.withheld = withheld
        gen.choice_value = f"side:{gen.side}" if hidden and gen.side else wire_value(Vote.Verdict.BETTER, gen)
    by_id = {gen.pk: gen for gen in generations}
    for gen in generations:
        if gen.fallback_of_id in by_id:
            gen.fallback_of = by_id[gen.fallback_of_id]  # so "fallback for Side A" uses this viewer's letters
        gen.display_name = label(gen, hidden)
    shown = _blind_images(run, generations, arena) if hidden else {}
    for gen in generations:
        gen.shown_images = ([] if withheld else shown.get(gen.pk, [])) if hidden else gen.final_images()
    return generations, hidden


# --- images while hidden ----------------------------------------------------------


def _delivered_images(generations: list[Generation]) -> list[Image]:
    return [img for g in generations if g.status == Generation.Status.SUCCEEDED for img in g.final_images()]


def _blind_images(run: Run, generations: list[Generation], arena: bool) -> dict:
    """generation id → its images as display copies, at the run's common frame."""
    common = blind_images.frame(_delivered_images(generations))
    if common is None:
        return {}
    query = "&arena=1" if arena and not run.blind else ""
    shown: dict = {}
    for gen in generations:
        if gen.status != Generation.Status.SUCCEEDED:
            continue
        for number, img in enumerate(gen.final_images(), start=1):
            size = blind_images.display_size(img, common)
            args = [run.pk, gen.side or side_letter(gen), number]
            key = f"?v={blind_images.version(img, size)}{query}"
            shown.setdefault(gen.pk, []).append(
                BlindImage(
                    url=reverse("blind_image", args=args) + key,
                    thumbnail_url=reverse("blind_thumbnail", args=args) + key,
                    width=size[0],
                    height=size[1],
                    has_alpha=img.has_alpha,
                )
            )
    return shown


def locate(run: Run, letter: str, number: int, arena: bool) -> tuple[Image, tuple[int, int]] | None:
    """The original behind a display copy's address, and the size to show it at; None
    when there is no such image, or while a side is still working."""
    generations = _order(run, arena)
    if not all(g.is_terminal for g in generations):
        return None
    index = LETTERS.find(letter) if len(letter) == 1 else -1
    if not 0 <= index < len(generations) or generations[index].status != Generation.Status.SUCCEEDED:
        return None
    images = generations[index].final_images()
    common = blind_images.frame(_delivered_images(generations))
    if not 1 <= number <= len(images) or common is None:
        return None
    image = images[number - 1]
    return image, blind_images.display_size(image, common)


# --- votes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """One button of the vote form: the value it posts, what it says, and the verdict
    (plus winning side) it stands for. `offered`: whether this run offers it."""

    value: str
    label: str
    verdict: Vote.Verdict
    winner: Generation | None = None
    offered: bool = True
    key: str = ""  # its keyboard key: a side's number in display order, 0 tie, x all bad

    def matches(self, vote: Vote | None) -> bool:
        if vote is None:
            return False
        return vote.verdict == self.verdict and vote.winner_id == (self.winner.pk if self.winner else None)


def wire_value(verdict: str, winner: Generation | None) -> str:
    """How clients name a verdict with the names shown: "gen:<position>", "tie" or "all_bad"."""
    return f"gen:{winner.position}" if winner is not None else str(verdict)


def all_choices(run: Run, generations: list[Generation], hidden: bool) -> list[Choice]:
    """Every choice a run of these sides could have, in display order."""
    letters = run.blind or any(getattr(g, "side", None) for g in generations)
    if len(generations) == 2:
        names = [f"{side_letter(g)} better" for g in generations] if letters else ["Left better", "Right better"]
    else:
        names = [f"{side_letter(g) if letters else g.display_name} best" for g in generations]
    delivered = sum(g.delivered for g in generations)
    better = Vote.Verdict.BETTER
    choices = [
        Choice(
            f"side:{side_letter(g)}" if hidden else wire_value(better, g),
            name,
            better,
            g,
            offered=g.delivered and delivered >= 2,
            key=str(n),
        )
        for n, (g, name) in enumerate(zip(generations, names, strict=True), start=1)
    ]
    choices.append(Choice(Vote.Verdict.TIE.value, "Tie", Vote.Verdict.TIE, offered=delivered >= 2, key="0"))
    all_bad = "Both bad" if len(generations) == 2 else "All bad"
    choices.append(Choice(Vote.Verdict.ALL_BAD.value, all_bad, Vote.Verdict.ALL_BAD, offered=delivered >= 1, key="x"))
    return choices


def vote_choices(run: Run, generations: list[Generation], hidden: bool) -> list[Choice]:
    """The choices this run offers, in display order: "better" for each side that
    delivered an image and "tie" when two or more sides did (one image is nothing to
    compare), "all bad" when any did. A blind
    viewer's form carries side letters, never positions (position 0 is usually the
    same model in every run)."""
    return [choice for choice in all_choices(run, generations, hidden) if choice.offered]


def read_choice(run: Run, value: str, arena: bool = False) -> tuple[Vote.Verdict, Generation | None] | None:
    """(verdict, winner) for a posted value (gen:<position>, side:<letter>, tie or
    all_bad), or None when it names nothing in this run. Letters are read in the
    order the viewer saw (the arena's order included). Whether the run offers that
    verdict is `vote_problem`'s question."""
    if value in (Vote.Verdict.TIE, Vote.Verdict.ALL_BAD):
        return Vote.Verdict(value), None
    kind, _, ref = value.partition(":")
    for index, gen in enumerate(_order(run, arena)):
        if (kind == "gen" and ref == str(gen.position)) or (kind == "side" and ref == LETTERS[index % len(LETTERS)]):
            return Vote.Verdict.BETTER, gen
    return None


def vote_problem(run: Run, verdict: Vote.Verdict, winner: Generation | None) -> str | None:
    """Why this run does not offer that verdict (see `vote_choices`), or None."""
    delivered = sum(g.delivered for g in run.generations.all())
    if verdict == Vote.Verdict.BETTER and winner is not None and not winner.delivered:
        return "That side has no image, so it cannot be the better one."
    if verdict in (Vote.Verdict.BETTER, Vote.Verdict.TIE) and delivered < 2:
        what = "A tie" if verdict == Vote.Verdict.TIE else "Picking a better side"
        return f"{what} needs two sides with an image; this run has " + ("one." if delivered == 1 else "none.")
    if verdict == Vote.Verdict.ALL_BAD and not delivered:
        return "No side delivered an image: there is nothing to judge."
    return None


@dataclass(frozen=True)
class Clock:
    """The run's one shared timer: from the first side's start to the last side's end
    (or to now, while any side works). Shown instead of per-side times while hidden."""

    seconds: float | None
    running: bool


def clock(generations: list[Generation]) -> Clock:
    starts = [g.started_at for g in generations if g.started_at]
    running = not all(g.is_terminal for g in generations)
    if not starts:
        return Clock(None, running)
    ends = [g.finished_at for g in generations if g.finished_at]
    end = timezone.now() if running or not ends else max(ends)
    return Clock(max(0.0, (end - min(starts)).total_seconds()), running)


def tally(run: Run, generations: list[Generation]) -> list[tuple[Choice, int]]:
    """Every choice with its number of votes, in display order, names shown (so only
    for viewers who may see them). Counted by `RunQuerySet.with_tally`; choices the
    run no longer offers are listed too, so every vote stays counted."""
    counts = {Vote.Verdict.TIE: run.ties_total, Vote.Verdict.ALL_BAD: run.all_bad_total}
    return [
        (choice, choice.winner.wins_total if choice.winner else counts[choice.verdict])
        for choice in all_choices(run, generations, hidden=False)
    ]
