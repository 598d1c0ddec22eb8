"""The suite endpoints of the JSON API (compare/api/suites.py): list, start, read, cancel,
compare; their errors in the API's one error shape; a suite run end to end through the
live simulator."""

import json
import time
from decimal import Decimal

import pytest

from compare.models import ApiToken, Generation, Run, SuiteRun
from compare.suites.models import Suite
from tests.factories import BOTH
from tests.test_suite_dispatch import make_suite, team


@pytest.fixture
def token(user):
    return ApiToken.issue(user, "tests")[1]


@pytest.fixture
def api(client, token):
    class Api:
        def get(self, path):
            return client.get(path, headers={"Authorization": f"Bearer {token}"})

        def post(self, path, body=None, raw=False):
            data = body if raw else json.dumps(body if body is not None else {})
            return client.post(
                path, data, content_type="application/json", headers={"Authorization": f"Bearer {token}"}
            )

    return Api()


def assert_error(response, status, *fragments) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert set(body) == {"error"}
    for fragment in fragments:
        assert fragment in body["error"]["message"]
    return body["error"]


def nothing_written() -> bool:
    return not SuiteRun.objects.exists() and not Run.objects.exists() and not Generation.objects.exists()


# --- reading ------------------------------------------------------------------------------


def test_list_suites_with_their_case_counts(api, db):
    mine = make_suite()
    body = api.get("/api/suites").json()
    listed = {s["name"]: s for s in body["results"]}
    assert listed["Three cases"]["cases"] == 3 and listed["Three cases"]["version"] == 3
    assert listed["Three cases"]["url"] == f"http://testserver/suites/{mine.pk}/"
    assert listed["Three cases"]["runs_url"] == f"http://testserver/api/suites/{mine.pk}/runs"
    # Every stored suite is listed, the built-in reference suite included, with its own count.
    assert len(listed) == Suite.objects.count()
    for suite in Suite.objects.all():
        assert listed[suite.name]["cases"] == suite.cases.count()


def test_start_answers_201_with_urls_and_progress(api, user, no_task_execution):
    team(max_in_flight=4)
    suite = make_suite()
    response = api.post(f"/api/suites/{suite.pk}/runs", {"models": BOTH, "samples": 2})
    assert response.status_code == 201, response.content
    body = response.json()
    suite_run = SuiteRun.objects.get()
    assert body["id"] == str(suite_run.pk)
    assert response["Location"] == body["api_url"] == f"http://testserver/api/suite-runs/{suite_run.pk}"
    assert body["url"] == f"http://testserver/suite-runs/{suite_run.pk}/"
    assert body["cancel_url"] == body["api_url"] + "/cancel"
    assert body["suite"] == {"id": suite.pk, "name": "Three cases", "version": 3}
    assert (body["models"], body["samples"], body["cases"], body["author"]) == (BOTH, 2, 3, "dana")
    assert Decimal(body["estimated_cost_usd"]) == suite_run.estimated_cost_usd
    progress = body["progress"]
    assert (progress["total"], progress["queued"], progress["done"], progress["finished"]) == (12, 12, 0, False)
    # 4 may run at once (Team settings); the other 8 wait in the queue, and say so.
    assert progress["waiting"] == 8
    assert progress["waiting_for"] == ["Queued behind your other generations: at most 4 of yours run at once."]
    # Listed under the suite.
    runs = api.get(f"/api/suites/{suite.pk}/runs").json()
    assert [r["id"] for r in runs["results"]] == [body["id"]] and runs["suite"]["cases"] == 3


def test_samples_default_to_one(api, no_task_execution):
    suite = make_suite()
    assert api.post(f"/api/suites/{suite.pk}/runs", {"models": ["gpt-image-2"]}).status_code == 201
    assert Run.objects.count() == 3 and Generation.objects.count() == 3


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"models": BOTH, "samples": 0}, "samples", "from 1 to 20, not 0"),
        ({"models": BOTH, "samples": 21}, "samples", "from 1 to 20, not 21"),
        ({"models": BOTH, "samples": "x"}, "samples", "Must be an integer from 1 to 20, not a string"),
        ({"models": BOTH, "samples": "5"}, "samples", "not a string"),
        ({"models": BOTH, "samples": True}, "samples", "not a boolean"),
        ({"models": BOTH, "samples": 2.5}, "samples", "not a number"),
        ({"models": ["gpt-image-2", "nope"], "samples": 2}, "models", "Unknown model 'nope'"),
        ({"models": [], "samples": 2}, "models", "Pick at least one model"),
        ({"models": "gpt-image-2", "samples": 2}, "models", "Must be a list of model keys"),
        ({"samples": 2}, "models", "not null"),
        ({"models": BOTH, "samples": 2, "blind": True}, "blind", "Unknown field: blind"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_writes_nothing(api, no_task_execution, body, field, fragment):
    suite = make_suite()
    response = api.post(f"/api/suites/{suite.pk}/runs", body)
    error = assert_error(response, 400)
    assert field in error["fields"]
    assert fragment in error["message"] + " ".join(error["fields"][field])
    assert nothing_written()


@pytest.mark.parametrize(
    ("raw", "fragment"), [("{not json", "not valid JSON"), ("[1]", "not a list"), ("", "not valid JSON")]
)
def test_malformed_body_is_400(api, no_task_execution, raw, fragment):
    suite = make_suite()
    assert_error(api.post(f"/api/suites/{suite.pk}/runs", raw, raw=True), 400, fragment)
    assert nothing_written()


def test_a_case_no_chosen_model_can_run_is_400(api, no_task_execution):
    suite = make_suite("One", cases=[{"title": "Q", "prompt": "a fox", "options": {"quality": "high"}}])
    error = assert_error(
        api.post(f"/api/suites/{suite.pk}/runs", {"models": ["gemini-3-pro-image"], "samples": 1}),
        400,
        "Case 1 (“Q”): quality: None of the chosen models supports quality.",
    )
    assert "cases" in error["fields"]
    assert nothing_written()


def test_over_the_daily_budget_is_429_with_the_numbers(api, no_task_execution):
    team(daily_budget_usd=Decimal("0.50"))
    suite = make_suite()
    assert_error(
        api.post(f"/api/suites/{suite.pk}/runs", {"models": BOTH, "samples": 10}),
        429,
        "This suite run (60 generations)",
        "today's limit of $0.50",
    )
    assert nothing_written()


@pytest.mark.parametrize("path", ["/api/suites/999999/runs", "/api/suites/nope/runs", "/api/suites/-1/runs"])
def test_unknown_suite_is_404(api, no_task_execution, path):
    assert_error(api.post(path, {"models": BOTH, "samples": 1}), 404, "No suite with id")
    assert_error(api.get(path), 404, "No suite with id")


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/api/suite-runs/nope", "suite run ids are UUIDs"),
        ("/api/suite-runs/2f1e8a4e-4b8f-4f5a-9d2c-1a2b3c4d5e6f", "No suite run with id 2f1e8a4e"),
    ],
)
def test_unknown_suite_run_is_404(api, path, fragment, db):
    assert_error(api.get(path), 404, fragment)
    assert_error(api.post(path + "/cancel"), 404, fragment)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/suites"),
        ("post", "/api/suites/1/runs"),
        ("get", "/api/suite-runs/2f1e8a4e-4b8f-4f5a-9d2c-1a2b3c4d5e6f"),
        ("post", "/api/suite-runs/2f1e8a4e-4b8f-4f5a-9d2c-1a2b3c4d5e6f/cancel"),
    ],
)
def test_no_token_is_401_even_with_a_session(client, user, method, path):
    client.force_login(user)
    response = getattr(client, method)(path)
    assert_error(response, 401, "Send an API token")
    assert not SuiteRun.objects.exists()


@pytest.mark.parametrize(
    ("method", "path"), [("post", "/api/suites"), ("get", "/api/suite-runs/{id}/cancel"), ("put", "/api/suites/1/runs")]
)
def test_wrong_method_is_405(client, token, method, path):
    response = getattr(client, method)(
        path.format(id="2f1e8a4e-4b8f-4f5a-9d2c-1a2b3c4d5e6f"), headers={"Authorization": f"Bearer {token}"}
    )
    assert_error(response, 405, "not " + method.upper())


# --- cancelling and comparing -------------------------------------------------------------------


def test_cancel_stops_what_has_not_finished(api, no_task_execution):
    suite = make_suite()
    started = api.post(f"/api/suites/{suite.pk}/runs", {"models": BOTH, "samples": 1}).json()
    body = api.post(started["cancel_url"].removeprefix("http://testserver")).json()
    assert body["cancelled"] == 6 and body["cancelled_at"]
    assert (body["progress"]["cancelled"], body["progress"]["queued"], body["progress"]["finished"]) == (6, 0, True)
    assert set(Generation.objects.values_list("status", flat=True)) == {"cancelled"}
    again = api.post(started["cancel_url"].removeprefix("http://testserver")).json()
    assert again["cancelled"] == 0


def test_compare_two_suite_runs(api, no_task_execution):
    suite = make_suite()
    a = api.post(f"/api/suites/{suite.pk}/runs", {"models": BOTH, "samples": 1}).json()["id"]
    b = api.post(f"/api/suites/{suite.pk}/runs", {"models": ["gpt-image-2"], "samples": 1}).json()["id"]
    body = api.get(f"/api/suite-runs/{a}/compare/{b}").json()
    assert (body["a"]["id"], body["b"]["id"]) == (a, b)
    comparison = body["comparison"]
    assert comparison["matched_by"] == "position"
    assert [(c["case_a"], c["model"]) for c in comparison["changes"]] == [(i, "gpt-image-2") for i in range(3)]
    assert comparison["models_only_a"] == ["Nano Banana Pro"]


# --- end to end through the live simulator ------------------------------------------------------


def wait_until_finished(api, path: str, seconds: float = 90.0) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body = api.get(path).json()
        if body["progress"]["finished"]:
            return body
        time.sleep(0.2)
    raise AssertionError(f"suite run still running after {seconds}s: {body['progress']}")


@pytest.mark.django_db(transaction=True)
def test_a_suite_run_through_the_simulator_reports_what_the_database_holds(api, user, simulator):
    team(max_in_flight=3)  # fewer than the 8 generations: the rest wait their turn, then run
    suite = make_suite(
        "Two cases",
        cases=[
            {"title": "Lighthouse", "prompt": "a lighthouse at dusk", "tags": ["photo"]},
            {"title": "Refused by one", "prompt": "a cat [[fault:refusal@gemini]]"},
        ],
    )
    started = api.post(f"/api/suites/{suite.pk}/runs", {"models": BOTH, "samples": 2})
    assert started.status_code == 201, started.content
    body = wait_until_finished(api, started.json()["api_url"].removeprefix("http://testserver"))

    progress = body["progress"]
    assert (progress["total"], progress["done"], progress["failed"]) == (8, 6, 2)
    assert (progress["queued"], progress["running"], progress["waiting"]) == (0, 0, 0)
    gens = Generation.objects.filter(run__suite_run_id=body["id"])
    assert gens.filter(status="succeeded").count() == 6 and gens.filter(status="refused").count() == 2
    assert not gens.exclude(waiting_for="").exists()

    cells = {(case["index"], cell["model"]): cell for case in body["results"]["cases"] for cell in case["cells"]}
    assert set(cells) == {(c, m) for c in (0, 1) for m in BOTH}
    for (case, model), cell in cells.items():
        rows = gens.filter(run__suite_case=case, model_key=model)
        assert cell["generations"] == 2
        assert {s["run"] for s in cell["samples"]} == {str(r) for r in rows.values_list("run_id", flat=True)}
        # The success rule (compare/suites/results.py): succeeded and its checks passed; a refusal fails.
        passed = rows.filter(status="succeeded", check_status="passed").count()
        failed = rows.filter(status__in=["failed", "refused"]).count() + rows.filter(check_status="failed").count()
        assert (cell["successes"], cell["n"]) == (passed, passed + failed)
    refused = cells[(1, "gemini-3-pro-image")]
    assert (refused["successes"], refused["n"], refused["rate"]) == (0, 2, 0.0)
    # Wilson 95 % for 0 of 2: [0, z²/(n + z²)] = [0, 3.8415/5.8415].
    assert refused["low"] == 0.0 and refused["high"] == pytest.approx(0.6576, abs=1e-4)
    assert [s["status"] for s in refused["samples"]] == ["refused", "refused"]
    assert body["results"]["rule"].startswith("A generation counts as a success")
