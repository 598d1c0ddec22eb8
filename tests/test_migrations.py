"""Data migrations, run for real: migrate back, write rows as the old code did,
migrate forward, and check what the new code reads (and the way back)."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

BEFORE_VERDICTS = [("compare", "0006_claim")]
AFTER_VERDICTS = [("compare", "0009_remove_vote_choice")]


def migrate(targets):
    """Migrate the test database to `targets`; the models as they were there."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


def latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.fixture
def migrator():
    """Leaves the database fully migrated again, whatever the test did."""
    yield migrate
    migrate(latest())


@pytest.mark.django_db(transaction=True)
def test_vote_choices_become_a_verdict_and_the_winning_generation(migrator):
    old = migrator(BEFORE_VERDICTS)
    User = old.get_model("auth", "User")
    Run = old.get_model("compare", "Run")
    Generation = old.get_model("compare", "Generation")
    Vote = old.get_model("compare", "Vote")
    dana, lee, kim = (User.objects.create(username=name) for name in ("dana", "lee", "kim"))
    pair = Run.objects.create(author=dana, prompt="a pair")
    trio = Run.objects.create(author=dana, prompt="a trio", blind=True)
    for run, keys in ((pair, ["gpt-image-2", "gemini-3-pro-image"]), (trio, ["a", "b", "c"])):
        for position, key in enumerate(keys):
            # Blind order differs from the position: the vote names the position.
            Generation.objects.create(
                run=run, position=position, blind_position=len(keys) - 1 - position, model_key=key, model_label=key
            )
    Vote.objects.create(run=pair, user=dana, choice="gen:1")
    Vote.objects.create(run=pair, user=lee, choice="tie")
    Vote.objects.create(run=pair, user=kim, choice="all_bad", blind=True)
    Vote.objects.create(run=trio, user=dana, choice="gen:2", blind=True)
    Vote.objects.create(run=trio, user=lee, choice="gen:7")  # a side the run does not have: counted for no one
    Vote.objects.create(run=trio, user=kim, choice="gen:x")

    new = migrator(AFTER_VERDICTS)
    Vote = new.get_model("compare", "Vote")
    converted = {
        (v.run.prompt, v.user.username): (v.verdict, v.winner and v.winner.model_key, v.blind)
        for v in Vote.objects.select_related("run", "user", "winner")
    }
    assert converted == {
        ("a pair", "dana"): ("better", "gemini-3-pro-image", False),
        ("a pair", "lee"): ("tie", None, False),
        ("a pair", "kim"): ("all_bad", None, True),
        ("a trio", "dana"): ("better", "c", True),
    }
    assert "choice" not in {f.name for f in Vote._meta.get_fields()}
    # The database itself refuses a winner without "better" and "better" without a winner.
    trio_id = new.get_model("compare", "Run").objects.get(prompt="a trio").pk
    for verdict, winner in (("better", None), ("tie", Vote.objects.get(verdict="better", run_id=trio_id).winner)):
        with pytest.raises(IntegrityError), transaction.atomic():
            Vote.objects.create(run_id=trio_id, user_id=lee.pk, verdict=verdict, winner=winner)

    back = migrator(BEFORE_VERDICTS)
    Vote = back.get_model("compare", "Vote")
    choices = {(v.run.prompt, v.user.username): v.choice for v in Vote.objects.select_related("run", "user")}
    assert choices == {
        ("a pair", "dana"): "gen:1",
        ("a pair", "lee"): "tie",
        ("a pair", "kim"): "all_bad",
        ("a trio", "dana"): "gen:2",
    }
