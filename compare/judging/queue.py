"""The Judge queue's counts, for its page when there is nothing left to serve.

Which runs the queue serves is one rule, `RunQuerySet.judge_queue` in
compare/models.py: runs whose model names the viewer has never seen, every side
finished, at least two sides with an image. This module only counts, so the empty
queue can say why it is empty: nothing to judge yet, or everything judged."""

from django.db.models import Count, Q

from compare.models import Run


def summary(user) -> dict[str, int | bool]:
    """How the runs a Judge queue could hold stand for `user`:

    - `left`: in the queue now (only skipped ones, when the queue page is shown);
    - `judged`: judgeable runs this viewer has voted on;
    - `seen`: judgeable runs left out because the viewer has seen their names
      (opened with names shown, or "Show model names") without voting;
    - `own`: judgeable runs of their own (never in their queue);
    - `waiting`: other people's runs still generating (they join the queue later);
    - `all_judged`: the queue is empty because everything was judged."""
    runs = Run.objects.with_viewer(user, arena=True).with_image_sides()
    judgeable = Q(image_sides__gte=2) & ~Q(state__in=Run.UNFINISHED)
    others = ~Q(author=user)
    counts = runs.aggregate(
        judged=Count("pk", filter=judgeable & others & Q(voted_by_me=True)),
        seen=Count("pk", filter=judgeable & others & Q(voted_by_me=False, revealed_to_me=True)),
        own=Count("pk", filter=judgeable & Q(author=user)),
        waiting=Count("pk", filter=others & Q(state__in=Run.UNFINISHED)),
    )
    counts["left"] = Run.objects.judge_queue(user).count()  # the queue's own rule, not a copy of it
    return {**counts, "all_judged": counts["judged"] > 0 and counts["left"] == 0}
