# Step 2 of 3: convert each vote's `choice` string into a verdict and a winner.
#   "gen:<n>"        -> verdict "better", winner = the run's generation at position n
#   "tie", "all_bad" -> the same verdict, no winner
# A vote naming a position the run does not have (or any other string) counted for
# no one — the leaderboard skipped it — and cannot be expressed any more: it is deleted.
# Reversible: "better" votes become "gen:<winner's position>" again.

from django.db import migrations

BATCH = 500


def choice_to_verdict(apps, schema_editor):
    Vote = apps.get_model("compare", "Vote")
    Generation = apps.get_model("compare", "Generation")
    db = schema_editor.connection.alias
    votes = Vote.objects.using(db).filter(verdict__isnull=True)
    for verdict in ("tie", "all_bad"):
        votes.filter(choice=verdict).update(verdict=verdict)
    positions = {
        (run_id, position): gen_id
        for run_id, position, gen_id in Generation.objects.using(db)
        .filter(run__in=votes.filter(choice__startswith="gen:").values("run"))
        .values_list("run_id", "position", "id")
    }
    converted, unreadable = [], []
    for vote in votes.filter(verdict__isnull=True).only("pk", "run_id", "choice").iterator(chunk_size=BATCH):
        ref = vote.choice.removeprefix("gen:")
        winner = positions.get((vote.run_id, int(ref))) if vote.choice.startswith("gen:") and ref.isascii() and ref.isdigit() else None
        if winner is None:
            unreadable.append(vote.pk)
            continue
        vote.verdict, vote.winner_id = "better", winner
        converted.append(vote)
    Vote.objects.using(db).bulk_update(converted, ["verdict", "winner"], batch_size=BATCH)
    Vote.objects.using(db).filter(pk__in=unreadable).delete()


def verdict_to_choice(apps, schema_editor):
    Vote = apps.get_model("compare", "Vote")
    db = schema_editor.connection.alias
    for verdict in ("tie", "all_bad"):
        Vote.objects.using(db).filter(verdict=verdict).update(choice=verdict)
    better = Vote.objects.using(db).filter(verdict="better").select_related("winner").only("pk", "winner__position")
    rows = []
    for vote in better.iterator(chunk_size=BATCH):
        vote.choice = f"gen:{vote.winner.position}"
        rows.append(vote)
    Vote.objects.using(db).bulk_update(rows, ["choice"], batch_size=BATCH)


class Migration(migrations.Migration):
    dependencies = [
        ("compare", "0007_vote_verdict_winner"),
    ]

    operations = [
        migrations.RunPython(choice_to_verdict, verdict_to_choice),
    ]
