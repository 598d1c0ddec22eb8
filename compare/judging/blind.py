"""Blind judging: in a blind run the sides are shuffled and named A, B, … and
nothing a viewer can see tells which model is which until that viewer has voted
(or asked to see the names). Every page, fragment, API reply and download of a
run goes through `prepare` so this rule lives in one place."""

import hashlib

from compare.models import Generation, Reveal, Run, Vote

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def names_hidden(run: Run, user, arena: bool = False) -> bool:
    """Hidden for a blind run (or any run judged from the arena queue) until this
    viewer has voted on it or seen the names."""
    if not (run.blind or arena):
        return False
    if any(v.user_id == user.id for v in run.votes.all()):
        return False
    return not Reveal.objects.filter(run=run, user=user).exists()


def side_letter(gen: Generation) -> str:
    """The side's letter: set by `prepare` for this viewer, else from the blind order."""
    letter = getattr(gen, "side", None)
    return letter or LETTERS[gen.blind_position % len(LETTERS)]


def _order(run: Run, shuffle: bool) -> list[Generation]:
    generations = list(run.generations.all())
    if run.blind:
        return sorted(generations, key=lambda g: g.blind_position)
    if shuffle:
        # A run judged blind from the arena was not shuffled when it was made: derive a
        # stable order from the ids, so "Side A" is not always the first model picked.
        return sorted(generations, key=lambda g: hashlib.sha256(f"{run.pk}:{g.pk}".encode()).hexdigest())
    return sorted(generations, key=lambda g: g.position)


def label(gen: Generation, hidden: bool) -> str:
    if hidden:
        name = f"Side {side_letter(gen)}"
    elif gen.run.blind:
        name = f"{side_letter(gen)} · {gen.model_label}"
    else:
        name = gen.model_label
    original = gen.fallback_of
    if original is not None:
        # A fallback is never disguised as the side it stands in for.
        name += f" (fallback for {label(original, hidden)})"
    return name


def prepare(run: Run, user, arena: bool = False) -> tuple[list[Generation], bool]:
    """The run's generations in display order, each with `display_name` set for this viewer."""
    hidden = names_hidden(run, user, arena)
    generations = _order(run, shuffle=arena and hidden)
    for index, gen in enumerate(generations):
        gen.run = run
        gen.side = LETTERS[index % len(LETTERS)] if (run.blind or hidden) else None
    by_id = {gen.pk: gen for gen in generations}
    for gen in generations:
        if gen.fallback_of_id in by_id:
            gen.fallback_of = by_id[gen.fallback_of_id]  # so "fallback for Side A" uses this viewer's letters
        gen.display_name = label(gen, hidden)
    return generations, hidden


def vote_choices(run: Run, generations: list[Generation], hidden: bool) -> list[tuple[str, str]]:
    """(value, label) in display order. A blind viewer's form carries side letters,
    never positions (position 0 is usually the same model in every run)."""
    if len(generations) == 2:
        names = ["Left better", "Right better"]
    else:
        names = [f"{gen.display_name} best" for gen in generations]
    choices = [
        (f"side:{side_letter(g)}" if hidden else f"gen:{g.position}", name)
        for g, name in zip(generations, names, strict=True)
    ]
    choices.append((Vote.TIE, "Tie"))
    choices.append((Vote.ALL_BAD, "Both bad" if len(generations) == 2 else "All bad"))
    return choices


def choice_to_stored(run: Run, value: str, arena: bool = False) -> str | None:
    """Map a submitted value (gen:<position> or side:<letter>) to the stored choice.
    Letters are read in the order the viewer saw (the arena's shuffle included)."""
    if value in (Vote.TIE, Vote.ALL_BAD):
        return value
    kind, _, ref = value.partition(":")
    for index, gen in enumerate(_order(run, shuffle=arena and not run.blind)):
        if (kind == "gen" and ref == str(gen.position)) or (kind == "side" and ref == LETTERS[index % len(LETTERS)]):
            return f"gen:{gen.position}"
    return None


def tally(run: Run, generations: list[Generation]) -> list[tuple[str, int]]:
    """[(label, count)] in display order (only shown to viewers who may see names)."""
    counts: dict[str, int] = {}
    for vote in run.votes.all():
        counts[vote.choice] = counts.get(vote.choice, 0) + 1
    return [(name, counts.get(value, 0)) for value, name in vote_choices(run, generations, hidden=False)]


def choice_name(run: Run, generations: list[Generation], stored: str) -> str:
    return dict(vote_choices(run, generations, hidden=False)).get(stored, stored)
