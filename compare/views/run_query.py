"""The run page's one read of a run, in statements compiled once per database
(compare/precompiled.py): the page, every answer of its live poll that draws something,
and every vote, note or rating posted on it read the run with its sides, images, ratings
and notes. Built as QuerySets each time, those statements took about 20 ms to compile
against well under 1 ms to run: time the open page and the generations in flight of the
same process waited for.

`load(user_id, run_id, arena, header)` gives what
`Run.objects.for_viewer(user).select_related(...).prefetch_related(...)` gives: the run
with its annotations, author, parent and suite run; its sides (`generations`, each with
`wins_total`, its `cached_from`, `images` and `ratings`); its notes with their authors
and sides; its references (the fairness ledger reads them); and with `header` the tags
and forks only the page's head shows.
"""

import uuid
from collections.abc import Sequence

from django.db import router
from django.db.models import Model

from compare.models import Generation, Image, Note, Rating, Reference, Run, Tag, Vote, count_of
from compare.precompiled import Precompiled, attach, attach_grouped, prep_of

_RUN_ID = uuid.UUID("00000000-0000-4000-8000-0000000a9200")
_USER_ID = -424244
_BY_RUN = [(_RUN_ID, prep_of(Generation, "run"))]


def _run(arena: bool) -> Precompiled:
    return Precompiled(
        lambda run_id, user_id: (
            Run.objects.for_viewer(user_id, arena=arena)
            .select_related("author", "parent", "suite_run")
            .filter(pk=run_id)
        ),
        [(_RUN_ID, prep_of(Run, "id")), (_USER_ID, None)],
    )


_RUNS = {False: _run(False), True: _run(True)}
_SIDES = Precompiled(
    lambda run_id: (
        Generation.objects.annotate(**{"wins_total": count_of(Vote, "winner")})
        .select_related("cached_from")
        .filter(run_id=run_id)
    ),
    _BY_RUN,
)
_IMAGES = Precompiled(lambda run_id: Image.objects.filter(generation__run_id=run_id), _BY_RUN)
_RATINGS = Precompiled(lambda run_id: Rating.objects.filter(generation__run_id=run_id), _BY_RUN)
_NOTES = Precompiled(
    lambda run_id: Note.objects.select_related("author").filter(run_id=run_id), [(_RUN_ID, prep_of(Note, "run"))]
)
_REFERENCES = Precompiled(
    lambda run_id: Reference.objects.filter(run_id=run_id), [(_RUN_ID, prep_of(Reference, "run"))]
)
_TAGS = Precompiled(lambda run_id: Tag.objects.filter(runs=run_id), [(_RUN_ID, prep_of(Run, "id"))])
_CHILDREN = Precompiled(lambda run_id: Run.objects.filter(parent_id=run_id), [(_RUN_ID, prep_of(Run, "id"))])


def load(user_id: int | None, run_id, arena: bool, header: bool = True) -> Run | None:
    """The run as its page shows it to this viewer, or None when there is none."""
    try:
        run_id = uuid.UUID(str(run_id))
    except ValueError:
        return None
    alias = router.db_for_read(Run)
    run = _RUNS[arena].first(alias, run_id, user_id)
    if run is None:
        return None
    sides = _SIDES.objects(alias, run_id)
    attach_grouped(sides, "images", _IMAGES.objects(alias, run_id), "generation_id")
    attach_grouped(sides, "ratings", _RATINGS.objects(alias, run_id), "generation_id")
    attach(run, "generations", sides)
    notes = _NOTES.objects(alias, run_id)
    _link(notes, "generation", {side.pk: side for side in sides})
    attach(run, "notes", notes)
    attach(run, "references", _REFERENCES.objects(alias, run_id))
    if header:
        attach(run, "tags", _TAGS.objects(alias, run_id))
        attach(run, "children", _CHILDREN.objects(alias, run_id))
    return run


def _link(objects: Sequence[Model], name: str, targets: dict) -> None:
    """Set each object's foreign key `name` to the loaded target it points at (no query)."""
    field = type(objects[0])._meta.get_field(name) if objects else None
    for obj in objects:
        field.set_cached_value(obj, targets.get(getattr(obj, f"{name}_id")))  # type: ignore[union-attr]
