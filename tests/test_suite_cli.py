"""`manage.py suite` (compare/management/commands/suite.py): list, and run with a progress
bar on stderr and the results table on stdout, end to end through the live simulator."""

import re
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from compare.budget import charge
from compare.models import Generation, Run, Suite, SuiteRun
from tests.factories import BOTH, make_user
from tests.test_suite_dispatch import make_suite, team

MODELS = ",".join(BOTH)


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("suite", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def fails(*args, returncode: int = 2) -> str:
    with pytest.raises(CommandError) as info:
        run(*args)
    assert info.value.returncode == returncode
    return str(info.value)


@pytest.fixture
def admin(db):
    return make_user("admin", is_staff=True, is_superuser=True)


def test_list_shows_each_suite_with_its_version_and_cases(db):
    suite = make_suite()
    out, _ = run("list")
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "NAME", "VERSION", "CASES", "LAST", "RUN"]
    [mine] = [row for row in rows if "Three cases" in row]
    assert mine.split() == [str(suite.pk), "Three", "cases", "3", "3", "never"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["No such suite", "--models", MODELS], "No suite named “No such suite”. Suites: "),
        (["Three cases", "--models", "gpt-image-2,nope"], "--models: Unknown model 'nope'"),
        (["Three cases", "--models", MODELS, "--samples", "0"], "--samples: Samples per case must be a whole number"),
        (["Three cases", "--models", MODELS, "--samples", "21"], "from 1 to 20, not '21'"),
        (["Three cases", "--models", MODELS, "--samples", "x"], "from 1 to 20, not 'x'"),
        (["Three cases", "--models", MODELS, "--user", "zed"], "No active user named 'zed'"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(admin, no_task_execution, args, expected):
    make_suite()
    assert expected in fails("run", *args)
    assert not SuiteRun.objects.exists() and not Run.objects.exists()


def test_over_budget_is_refused_with_the_numbers(admin, no_task_execution):
    team(daily_budget_usd=Decimal("0.10"))
    make_suite()
    message = fails("run", "Three cases", "--models", MODELS, "--samples", "3")
    assert "This suite run (18 generations)" in message and "today's limit of $0.10" in message
    assert not SuiteRun.objects.exists()


def table(out: str) -> dict[tuple[str, str], list[str]]:
    """{(case, model): [success, rate with interval, median s, cost]} from the printed table."""
    lines = out.splitlines()
    header = lines[0]
    assert header.split() == ["CASE", "MODEL", "SUCCESS", "RATE", "(95", "%", "CI)", "MEDIAN", "S", "COST", "(USD)"]
    model_at = header.index("MODEL")
    rows, case = {}, ""
    for line in lines[1:]:
        if not line.strip():
            break
        case = line[:model_at].strip() or case
        model, success, rest = line[model_at:].split(None, 2)
        match = re.fullmatch(r"(.+?)\s+(\S+)\s+(\S+)", rest)
        assert match, line
        rate, median, cost = match.groups()
        rows[(case, model)] = [success, rate, median, cost]
    return rows


@pytest.mark.django_db(transaction=True)
def test_suite_run_end_to_end_prints_progress_and_the_table(admin, simulator):
    team(max_in_flight=3)  # 8 generations, 3 at a time: the rest wait in the queue
    make_suite(
        "Two cases",
        cases=[
            {"title": "Lighthouse", "prompt": "a lighthouse at dusk"},
            {"title": "Refused by one", "prompt": "a cat [[fault:refusal@gemini]]"},
        ],
    )
    out, err = run("run", "two cases", "--models", MODELS, "--samples", "2")

    suite_run = SuiteRun.objects.get()
    assert suite_run.author == admin and suite_run.samples == 2
    gens = Generation.objects.filter(run__suite_run=suite_run)
    assert gens.filter(status="succeeded").count() == 6 and gens.filter(status="refused").count() == 2

    rows = table(out)
    gpt, nano = BOTH
    # Successes k/n and the 95 % Wilson interval, by hand: 2/2 → 34–100 %, 0/2 → 0–66 %,
    # 4/4 → 51–100 %, 2/4 → 15–85 % (z = 1.96).
    assert rows[("1 Lighthouse", gpt)][:2] == ["2/2", "100 % (34–100 %)"]
    assert rows[("1 Lighthouse", nano)][:2] == ["2/2", "100 % (34–100 %)"]
    assert rows[("2 Refused by one", gpt)][:2] == ["2/2", "100 % (34–100 %)"]
    assert rows[("2 Refused by one", nano)][:2] == ["0/2", "0 % (0–66 %)"]
    assert rows[("ALL CASES", gpt)][:2] == ["4/4", "100 % (51–100 %)"]
    assert rows[("ALL CASES", nano)][:2] == ["2/4", "50 % (15–85 %)"]
    # A refusal has no latency (only successes count); each cost is what its generations count against the budget.
    assert rows[("2 Refused by one", nano)][2] == "-"
    for (case, model), (_, _, median, cost) in rows.items():
        if case == "ALL CASES":
            mine = gens.filter(model_key=model)
        else:
            mine = gens.filter(model_key=model, run__suite_case=int(case.split()[0]) - 1)
        assert Decimal(cost) == sum(charge(g).counted for g in mine)
        if median != "-":
            assert float(median) >= 0
    # Verdicts: 2 of 2 against 0 of 2 leads, but those intervals overlap (34–100 % and 0–66 %).
    assert "2 Refused by one: GPT Image 2 ahead, 100 % vs 0 %, but the intervals overlap" in out
    assert "1 Lighthouse: No difference" in out
    # The specification half of the verdict: a refused side delivered nothing that met the request.
    assert re.search(
        r"\n    Requested [a-z ,]+: GPT Image 2 met (them|it) in 2 of 2, Nano Banana Pro in 0 of 2\.", out
    ), out
    assert f"Suite run: http://127.0.0.1:8000/suite-runs/{suite_run.pk}/" in out

    # The progress bar: stderr, not a terminal, so one line per change, ending at 8 of 8.
    lines = [line for line in err.splitlines() if line.startswith("[")]
    assert lines[-1].startswith("[" + "#" * 30 + "] 8/8 · done 6 · failed 2 · running 0 · queued 0")
    assert any("waiting" in line for line in lines)  # 5 were held while 3 ran


# --- export and import -------------------------------------------------------------------------


def test_export_then_import_gives_the_same_cases(db, tmp_path):
    suite = make_suite()
    for fmt in ("yaml", "json"):
        exported, _ = run("export", "Three cases", "--format", fmt)
        path = tmp_path / f"suite.{fmt}"
        path.write_text(exported, encoding="utf-8")
        # The name is taken: say so and write nothing, unless told what to do.
        message = fails("import", str(path))
        assert "A suite named “Three cases” exists (version 3)" in message and "--replace" in message
        out, _ = run("import", str(path), "--copy")
        copy = Suite.objects.exclude(pk=suite.pk).get(builtin=False)
        assert f"Imported “{copy.name}”" in out and copy.name != "Three cases"
        assert [c.snapshot() for c in copy.cases.all()] == [c.snapshot() for c in suite.cases.all()]
        copy.delete()
    out, _ = run("import", str(tmp_path / "suite.yaml"), "--replace")
    suite.refresh_from_db()
    assert suite.version == 4 and "is now version 4, with 3 cases" in out


def test_import_of_a_bad_file_names_the_problem_and_writes_nothing(db, tmp_path):
    before = Suite.objects.count()
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Bad\ncases:\n  - prompt: a fox\n    options: {quality: ultra}\n", encoding="utf-8")
    message = fails("import", str(bad))
    assert message.startswith("The suite file is not valid:") and "case 1" in message and "quality" in message
    assert "Cannot read" in fails("import", str(tmp_path / "missing.yaml"))
    assert Suite.objects.count() == before


def test_export_of_an_unknown_suite_fails(db):
    assert "No suite named “nope”" in fails("export", "nope")
