"""One run read in statements compiled once per database (compare/precompiled.py), for
the pages and clients that read a run again and again: the run page (its load, every
answer of its live poll that draws something, every vote, note or rating posted on it),
the API's read of one run (compare/api/serializers.py `run_for_viewer`, which an API
client's wait polls) and a generation's task (its run's references). Built as QuerySets
each time, the run page's statements took about 20 ms to compile against well under 1 ms
to run: time the open page and the generations in flight of the same process waited for.

`load(user_id, run_id, arena, header)` gives what
`Run.objects.for_viewer(user).select_related(...).prefetch_related(...)` gives: the run
with its annotations, author, parent and suite run; its sides (`generations`, each with
`wins_total`, its `cached_from`, `images` and `ratings`); its notes with their authors
and sides; its references (the fairness ledger reads them); and with `header` the tags
and forks only the page's head shows.
"""

import uuid

from django.db import router

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


RUNS = {False: _run(False), True: _run(True)}
SIDES = Precompiled(
    lambda run_id: (
        Generation.objects.annotate(**{"wins_total": count_of(Vote, "winner")})
        .select_related("cached_from")
        .filter(run_id=run_id)
    ),
    _BY_RUN,
)
IMAGES = Precompiled(lambda run_id: Image.objects.filter(generation__run_id=run_id), _BY_RUN)
_RATINGS = Precompiled(lambda run_id: Rating.objects.filter(generation__run_id=run_id), _BY_RUN)
_NOTES = Precompiled(
    lambda run_id: Note.objects.select_related("author").filter(run_id=run_id), [(_RUN_ID, prep_of(Note, "run"))]
)
REFERENCES = Precompiled(lambda run_id: Reference.objects.filter(run_id=run_id), [(_RUN_ID, prep_of(Reference, "run"))])
TAGS = Precompiled(lambda run_id: Tag.objects.filter(runs=run_id), [(_RUN_ID, prep_of(Run, "id"))])
_CHILDREN = Precompiled(lambda run_id: Run.objects.filter(parent_id=run_id), [(_RUN_ID, prep_of(Run, "id"))])


def load(user_id: int | None, run_id, arena: bool, header: bool = True) -> Run | None:
    """The run as its page shows it to this viewer, or None when there is none."""
    try:
        run_id = uuid.UUID(str(run_id))
    except ValueError:
        return None
    alias = router.db_for_read(Run)
    run = RUNS[arena].first(alias, run_id, user_id)
    if run is None:
        return None
    sides = SIDES.objects(alias, run_id)
    attach_grouped(sides, "images", IMAGES.objects(alias, run_id), "generation_id")
    attach_grouped(sides, "ratings", _RATINGS.objects(alias, run_id), "generation_id")
    attach(run, "generations", sides)
    notes = _NOTES.objects(alias, run_id)
    by_id = {side.pk: side for side in sides}
    for note in notes:  # each note's side is one of those just read (no query)
        Note.generation.field.set_cached_value(note, by_id.get(note.generation_id))
    attach(run, "notes", notes)
    attach(run, "references", REFERENCES.objects(alias, run_id))
    if header:
        attach(run, "tags", TAGS.objects(alias, run_id))
        attach(run, "children", _CHILDREN.objects(alias, run_id))
    return run
