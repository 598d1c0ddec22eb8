"""The JSON API: token auth, validation through RunForm, the shapes clients read,
and a real run through the live simulator."""

import json
import time
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from compare import tasks
from compare.api import views as api_views
from compare.models import ApiToken, Generation, Image, Note, Run, Vote
from compare.registry import registry
from tests.factories import (
    BOTH,
    GPT,
    IMMEDIATE_TASKS,
    MINI,
    NANO,
    add_image,
    make_run,
    make_user,
    new_run,
    png,
    without_random_ids,
)

MODELS = BOTH


@pytest.fixture
def token(user):
    return ApiToken.issue(user, "tests")[1]


@pytest.fixture
def api(client, token):
    """The test client with the token on every request."""

    class Api:
        def get(self, path, **params):
            return client.get(path, params, headers={"Authorization": f"Bearer {token}"})

        def post(self, path, body, raw=False):
            data = body if raw else json.dumps(body)
            return client.post(
                path, data, content_type="application/json", headers={"Authorization": f"Bearer {token}"}
            )

    return Api()


def assert_error(response, status, *fragments):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)  # not .json(): RequestFactory responses lack it
    assert set(body) == {"error"}
    for fragment in fragments:
        assert fragment in body["error"]["message"]
    return body["error"]


# --- authentication --------------------------------------------------------------


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer   ", "Basic YWxpY2U6eA==", "Bearer cmp_not-a-real-token"]
)
def test_missing_or_invalid_token_is_401_json(client, user, header):
    headers = {"Authorization": header} if header is not None else {}
    response = client.get("/api/runs", headers=headers)
    assert_error(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_is_rejected(client, user, token):
    assert client.get("/api/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    ApiToken.objects.filter(user=user).update(revoked_at=timezone.now())
    response = client.get("/api/runs", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "revoked")


def test_token_of_inactive_user_is_rejected(client, user, token):
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert_error(client.get("/api/runs", headers={"Authorization": f"Bearer {token}"}), 401)


def test_session_login_is_not_enough(client, user):
    # CSRF-exempt views must not honour the cookie, or any site could post runs.
    client.force_login(user)
    assert_error(client.get("/api/runs"), 401)
    assert_error(client.post("/api/runs", "{}", content_type="application/json"), 401)


def test_successful_use_records_last_used(api, user):
    api.get("/api/runs")
    first = ApiToken.objects.get(user=user).last_used_at
    assert first is not None
    # Within the minute the tokens page shows, a poll writes nothing; after it, the time moves on.
    api.get("/api/runs")
    assert ApiToken.objects.get(user=user).last_used_at == first
    ApiToken.objects.filter(user=user).update(last_used_at=first - ApiToken.LAST_USED_EVERY)
    api.get("/api/runs")
    later = ApiToken.objects.get(user=user).last_used_at
    assert later is not None and later > first


@pytest.mark.parametrize(
    ("method", "path"), [("put", "/api/runs"), ("delete", "/api/runs"), ("post", "/api/runs/{id}")]
)
def test_wrong_method_is_405_json(client, token, user, method, path):
    response = getattr(client, method)(
        path.format(id="2f1e8a4e-4b8f-4f5a-9d2c-1a2b3c4d5e6f"), headers={"Authorization": f"Bearer {token}"}
    )
    assert_error(response, 405, "not " + method.upper())
    assert response["Allow"]


def test_head_is_allowed_where_get_is(client, token):
    assert client.head("/api/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_json_404_for_bad_ids_and_unknown_paths(rf, user):
    # The URLconf only routes UUIDs here; these views are ready for <str:run_id> and a catch-all.
    token = ApiToken.issue(user, "rf")[1]
    request = rf.get("/api/runs/nope", headers={"Authorization": f"Bearer {token}"})
    assert_error(api_views.run_detail(request, "nope"), 404, "run ids are UUIDs")
    assert_error(api_views.not_found(rf.get("/api/nothing"), "nothing"), 404, "/api/nothing")


# --- creating a run: validation ----------------------------------------------------


def test_oversized_body_is_413(api, settings, no_task_execution):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    assert_error(api.post("/api/runs", {"prompt": "x" * 200, "models": MODELS}), 413, "too large")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ('["a", "b"]', "not a list"),
        ("42", "not a number"),
        ("null", "not null"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_malformed_body_is_400(api, no_task_execution, raw, fragment):
    assert_error(api.post("/api/runs", raw, raw=True), 400, fragment)
    assert Run.objects.count() == 0


def test_unknown_fields_are_listed(api, no_task_execution):
    error = assert_error(
        api.post("/api/runs", {"prompt": "x", "models": MODELS, "seed": 3, "style": "vivid"}),
        400,
        "Unknown fields: seed, style",
    )
    assert set(error["fields"]) == {"seed", "style"}


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("models", "gpt-image-2,gemini-3-pro-image", "list of model keys"),
        ("models", ["gpt-image-2", 7], "list of model keys"),
        ("models", None, "list of model keys"),
        ("prompt", 123, "Must be a string, not a number"),
        ("prompt", ["a"], "Must be a string, not a list"),
        ("n", True, "Must be an integer, not a boolean"),
        ("n", "2", "not a string"),
        ("n", 1.5, "not a number"),
        ("partial_images", False, "not a boolean"),
        ("grounding", "yes", "Must be a boolean"),
        ("quality", {"level": "high"}, "not an object"),
    ],
)
def test_wrong_types_are_400_with_a_field_message(api, no_task_execution, field, value, fragment):
    body = {"prompt": "a red fox", "models": MODELS, field: value}
    error = assert_error(api.post("/api/runs", body), 400, field)
    assert fragment in error["fields"][field][0]
    assert Run.objects.count() == 0


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"models": ["gpt-image-2"]}, "models", "at least two"),
        ({"models": ["gpt-image-2", "dall-e-9"]}, "models", "dall-e-9"),
        ({"prompt": ""}, "prompt", "required"),
        ({"prompt": "   "}, "prompt", "required"),
        ({"n": 9}, "n", "less than or equal to 4"),
        ({"size": "big"}, "size", "WIDTHxHEIGHT"),
        ({"quality": "ultra"}, "quality", "valid choice"),
        ({"background": "transparent", "output_format": "jpeg"}, "background", "PNG or WebP"),
    ],
)
def test_form_errors_are_reported_per_field(api, no_task_execution, changes, field, fragment):
    error = assert_error(api.post("/api/runs", {"prompt": "a red fox", "models": MODELS, **changes}), 400, field)
    assert fragment in " ".join(error["fields"][field])
    assert Run.objects.count() == 0


def test_missing_models_is_reported_by_the_form(api, no_task_execution):
    error = assert_error(api.post("/api/runs", {"prompt": "a red fox"}), 400)
    assert error["fields"]["models"] == ["This field is required."]


# --- creating a run: success -------------------------------------------------------


def test_create_run_returns_201_and_stores_the_run(api, user, no_task_execution, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api.post(
            "/api/runs", {"prompt": "a red fox", "models": MODELS, "n": 2, "quality": "high", "grounding": None}
        )
    assert response.status_code == 201, response.content
    body = response.json()
    run = Run.objects.get()
    assert body["id"] == str(run.id)
    assert body["url"] == f"http://testserver/runs/{run.id}/"
    assert body["api_url"] == f"http://testserver/api/runs/{run.id}"
    assert response["Location"] == body["api_url"]
    assert body["status"] == "running"
    assert [(g["model"], g["label"], g["status"], g["simulated"]) for g in body["generations"]] == [
        ("gpt-image-2", "GPT Image 2", "queued", True),
        ("gemini-3-pro-image", "Nano Banana Pro", "queued", True),
    ]
    # Defaults are the form's; the run belongs to the token's user; one task per generation.
    assert run.author == user
    assert run.options == {
        "aspect_ratio": "1:1",
        "resolution": "1K",
        "size": "",
        "quality": "high",
        "output_format": "png",
        "background": "auto",
        "n": 2,
        "partial_images": 0,
        "grounding": False,
        "references": 0,
        "mask": False,
        "output_compression": None,
        "moderation": "auto",
        "fallback_model": None,
        "fallback_quality": None,
        "fallback_on_text_check": False,
        "regenerate": False,
    }
    # One callback queues the generations (on PostgreSQL the live notice is another).
    assert len([c for c in callbacks if getattr(c, "func", None) is tasks.enqueue_generations]) == 1
    assert {str(g.id) for g in run.generations.all()} == {g["id"] for g in body["generations"]}


# --- reading runs ------------------------------------------------------------------


def test_unknown_run_is_404_json(api):
    assert_error(api.get("/api/runs/2f1e8a4e-4b8f-4f5a-9d2c-1a2b3c4d5e6f"), 404, "No run")


def test_run_detail_of_a_queued_run(api, user, no_task_execution):
    run = new_run(user)
    body = api.get(f"/api/runs/{run.id}").json()
    assert set(body) == {
        "id",
        "url",
        "api_url",
        "prompt",
        "options",
        "author",
        "created_at",
        "status",
        "generations",
        "votes",
        "notes_count",
        "blind",
        "tags",
    }
    assert (body["prompt"], body["author"], body["status"]) == ("a red fox", "dana", "running")
    assert datetime.fromisoformat(body["created_at"]) == run.created_at
    gen = body["generations"][0]
    assert set(gen) == {
        "id",
        "side",
        "position",
        "model",
        "label",
        "model_id",
        "simulated",
        "status",
        "attempts",
        "started_at",
        "finished_at",
        "latency_ms",
        "estimated_cost_usd",
        "cost_usd",
        "cost",
        "error",
        "params_sent",
        "images",
        "check_status",
        "checks",
        "waiting_for",
    }
    # Queued: nothing spent yet; its estimate, with the day its prices were checked.
    assert gen["cost"]["kind"] == "estimate" and gen["cost"]["prices_checked"]
    assert (gen["position"], gen["model"], gen["status"], gen["error"], gen["images"]) == (
        0,
        "gpt-image-2",
        "queued",
        None,
        [],
    )
    assert gen["estimated_cost_usd"] == str(run.generations.get(position=0).estimated_cost_usd)
    assert body["votes"] == {"tally": {"gen:0": 0, "gen:1": 0, "tie": 0, "all_bad": 0}, "total": 0}
    assert body["notes_count"] == 0


def test_run_detail_of_finished_generations(api, user, no_task_execution):
    run = new_run(user)
    ok, bad = run.ordered_generations()
    start = timezone.now()
    Generation.objects.filter(pk=ok.pk).update(
        status="succeeded",
        started_at=start,
        finished_at=start + timedelta(seconds=3),
        latency_ms=3000,
        cost_usd=Decimal("0.0530"),
        attempts=1,
        params_sent={"size": "1024x1024"},
    )
    Generation.objects.filter(pk=bad.pk).update(
        status="refused", error_kind="refused", error_message="Blocked by safety."
    )
    Image.objects.create(
        generation=ok,
        sha256="ab" * 32,
        file="images/ab/x.png",
        thumbnail="images/ab/x.webp",
        width=1024,
        height=1024,
        format="png",
        bytes=1234,
    )
    Image.objects.create(
        generation=ok,
        is_partial=True,
        sha256="cd" * 32,
        file="p.png",
        thumbnail="p.webp",
        width=256,
        height=256,
        format="png",
        bytes=10,
    )
    Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.BETTER, winner=run.generations.get(position=0))
    Note.objects.create(run=run, author=user, body="the fox is better")
    body = api.get(f"/api/runs/{run.id}").json()
    assert body["status"] == "partial"
    first, second = body["generations"]
    assert first["cost_usd"] == "0.0530" and first["latency_ms"] == 3000 and first["attempts"] == 1
    assert first["params_sent"] == {"size": "1024x1024"}
    assert first["images"] == [
        {
            "url": f"http://testserver/images/{'ab' * 32}",
            "thumbnail_url": f"http://testserver/images/{'ab' * 32}/thumbnail",
            "width": 1024,
            "height": 1024,
            "format": "png",
            "bytes": 1234,
        }
    ]
    assert second["error"] == {"kind": "refused", "message": "Blocked by safety."}
    assert second["cost_usd"] is None
    assert body["votes"]["tally"]["gen:0"] == 1 and body["votes"]["total"] == 1
    assert body["notes_count"] == 1


def test_run_detail_tallies_every_side_of_a_three_way_run(api, user, other_user):
    # Three sides (or two and a fallback) used to crash the tally: a 500 instead of the run.
    run = make_run(user, models=(GPT, NANO, MINI))
    Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.BETTER, winner=run.generations.get(position=2))
    Vote.objects.create(run=run, user=other_user, verdict=Vote.Verdict.TIE)
    response = api.get(f"/api/runs/{run.id}")
    assert response.status_code == 200, response.content
    tally = {"gen:0": 0, "gen:1": 0, "gen:2": 1, "tie": 1, "all_bad": 0}
    assert response.json()["votes"] == {"tally": tally, "total": 2}


def test_list_is_paginated_newest_first(api, user, no_task_execution):
    now = timezone.now()
    runs = [new_run(user, f"prompt {i}", created_at=now - timedelta(minutes=10 - i)) for i in range(5)]
    first = api.get("/api/runs", per_page=2).json()
    assert (first["count"], first["pages"], first["page"], first["previous"]) == (5, 3, 1, None)
    assert [r["prompt"] for r in first["results"]] == ["prompt 4", "prompt 3"]
    assert first["next"] == "http://testserver/api/runs?page=2&per_page=2"
    summary = first["results"][0]
    assert summary["id"] == str(runs[4].id)
    assert set(summary) == {
        "id",
        "url",
        "api_url",
        "prompt",
        "author",
        "created_at",
        "status",
        "generations",
        "votes_total",
        "notes_count",
        "blind",
    }
    assert [g["model"] for g in summary["generations"]] == MODELS
    last = api.get("/api/runs", page=3, per_page=2).json()
    assert [r["prompt"] for r in last["results"]] == ["prompt 0"]
    assert last["next"] is None and last["previous"] == "http://testserver/api/runs?page=2&per_page=2"
    assert api.get("/api/runs").json()["count"] == 5  # default per_page 20: one page


def test_list_queries_do_not_grow_with_the_page(api, user, no_task_execution, django_assert_max_num_queries):
    for i in range(8):
        new_run(user, f"prompt {i}")
    with django_assert_max_num_queries(9):  # token, last-used, count, runs, generations, images, votes
        assert len(api.get("/api/runs").json()["results"]) == 8


def test_empty_list(api):
    assert api.get("/api/runs").json() == {
        "results": [],
        "page": 1,
        "pages": 1,
        "count": 0,
        "next": None,
        "previous": None,
    }


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({"page": "abc"}, "page", "whole number"),
        ({"page": "0"}, "page", "at least 1"),
        ({"page": "-1"}, "page", "whole number"),
        ({"page": "2"}, "page", "past the last page (1)"),
        ({"per_page": "101"}, "per_page", "at most 100"),
        ({"per_page": "0"}, "per_page", "at least 1"),
    ],
)
def test_bad_page_numbers_are_400(api, params, field, fragment):
    error = assert_error(api.get("/api/runs", **params), 400, fragment)
    assert field in error["fields"]


# --- end to end through the live simulator ----------------------------------------------


def wait_until_finished(api, run_id: str, seconds: float = 30.0) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body = api.get(f"/api/runs/{run_id}").json()
        if body["status"] not in {"running", "empty"}:
            return body
        time.sleep(0.1)
    raise AssertionError(f"run still running after {seconds}s: {body}")


@pytest.mark.django_db(transaction=True)
def test_api_run_completes_with_images_through_the_simulator(api, client, user, simulator):
    # The default task backend: the thread pool, as in production's embedded profile.
    response = api.post("/api/runs", {"prompt": 'A poster that says "HELLO"', "models": MODELS, "aspect_ratio": "16:9"})
    assert response.status_code == 201, response.content
    run_id = response.json()["id"]
    body = wait_until_finished(api, run_id)
    assert body["status"] == "done", body
    for gen in body["generations"]:
        assert gen["status"] == "succeeded" and gen["simulated"] and gen["error"] is None
        assert gen["attempts"] == 1 and gen["latency_ms"] is not None and gen["finished_at"]
        assert gen["params_sent"]
        [image] = gen["images"]
        assert image["width"] > image["height"]  # 16:9 was honoured
        # The image URL needs a login session, not the token.
        client.force_login(user)
        fetched = client.get(image["url"].removeprefix("http://testserver"))
        assert fetched.status_code == 200
        assert fetched["Content-Type"] == f"image/{image['format']}"
        assert len(b"".join(fetched.streaming_content)) == image["bytes"]
    listed = api.get("/api/runs").json()["results"]
    assert [r["id"] for r in listed] == [run_id]
    assert listed[0]["status"] == "done"


@pytest.mark.django_db(transaction=True)
def test_api_run_reports_a_refusal(api, settings, simulator):
    settings.TASKS = IMMEDIATE_TASKS  # the run is finished by the time POST answers
    response = api.post("/api/runs", {"prompt": "a cat [[fault:refusal@gemini]]", "models": MODELS})
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "partial"
    body = api.get(f"/api/runs/{response.json()['id']}").json()
    statuses = {g["model"]: (g["status"], g["error"] and g["error"]["kind"]) for g in body["generations"]}
    assert statuses == {"gpt-image-2": ("succeeded", None), "gemini-3-pro-image": ("refused", "refused")}
    assert registry()["gemini-3-pro-image"].simulated


@pytest.mark.django_db
def test_scripts_fetch_images_with_their_token_and_nobody_else_does(client, tmp_path):
    owner = make_user("script-owner")
    _, token = ApiToken.issue(owner, "script")
    data = png("red", (32, 16))
    run = make_run(owner, "p", models=[GPT])
    digest = add_image(run.generations.get(), data).sha256
    ok = client.get(f"/images/{digest}", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert ok.status_code == 200 and b"".join(ok.streaming_content) == data
    assert client.get(f"/images/{digest}/thumbnail", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert client.get(f"/images/{digest}", HTTP_AUTHORIZATION="Bearer cmp_wrong").status_code == 302
    assert client.get(f"/images/{digest}").status_code == 302


def test_the_api_accepts_exactly_the_form_fields_with_their_json_types():
    # Derived from RunForm's fields (compare/api/schema.py), not checked by an assert that `python -O` drops.
    from compare.api import schema
    from compare.forms import RunForm

    assert set(schema.FIELDS) == set(RunForm.base_fields) | {"reuse"}
    types = {name: json_type.name for name, json_type in schema.FIELDS.items()}
    assert types["prompt"] == types["quality"] == types["parent"] == "a string"
    assert types["models"] == types["reuse"] == "a list of strings"
    assert types["n"] == types["output_compression"] == "an integer"
    assert types["grounding"] == types["blind"] == "a boolean"
    assert (types["references"], types["mask"]) == ("a list of base64 strings", "a base64 string")
    assert schema.REQUIRED == {"prompt", "models"}


def test_a_blind_run_tells_no_side_apart_in_the_api_until_the_vote(api, user, other_user, client):
    start = timezone.now() - timedelta(seconds=10)
    run = make_run(other_user, blind=True, status=["succeeded", "running"], started_at=start, latency_ms=6100)
    gpt, nano = run.generations.order_by("position")
    original = add_image(gpt, png("red", (65, 48)))
    Generation.objects.filter(pk=gpt.pk).update(finished_at=start + timedelta(seconds=6.1), attempts=2)
    # While a side works, no side shows an outcome: which one finished first is a latency too.
    body = api.get(f"/api/runs/{run.id}").json()
    assert [(g["label"], g["status"], g["images"]) for g in body["generations"]] == [
        ("Side A", "running", []),
        ("Side B", "running", []),
    ]
    listed = api.get("/api/runs").json()["results"][0]["generations"]
    assert [g["status"] for g in listed] == ["running", "running"]

    add_image(nano, png("blue", (64, 48)))
    Generation.objects.filter(pk=nano.pk).update(status="succeeded", latency_ms=4200, finished_at=timezone.now())
    body = api.get(f"/api/runs/{run.id}").json()
    text = json.dumps(body)
    assert original.sha256 not in text
    words = without_random_ids(text)
    for giveaway in ["6100", "4200", "/images/", "webp"]:
        assert giveaway not in words, giveaway
    for gen in body["generations"]:
        assert gen["status"] == "succeeded"
        for field in ("latency_ms", "started_at", "finished_at", "attempts", "cost_usd", "model_id", "position"):
            assert gen[field] is None, field
        (image,) = gen["images"]
        assert (image["width"], image["height"], image["format"], image["bytes"]) == (65, 48, "png", None)
        assert image["url"].startswith(f"http://testserver/runs/{run.id}/sides/{gen['side']}/1?v=")
        # The token fetches the display copy like any image URL the API returns.
        fetched = client.get(image["url"], headers={"Authorization": f"Bearer {ApiToken.issue(user, 'x')[1]}"})
        assert fetched.status_code == 200 and fetched["Content-Type"] == "image/png"

    Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.TIE)
    body = api.get(f"/api/runs/{run.id}").json()
    by_model = {g["model"]: g for g in body["generations"]}
    assert by_model["gpt-image-2"]["latency_ms"] == 6100 and by_model["gpt-image-2"]["attempts"] == 2
    assert by_model["gpt-image-2"]["images"][0]["url"] == f"http://testserver/images/{original.sha256}"
    assert by_model["gpt-image-2"]["images"][0]["width"] == 65


# --- the precompiled read of one run ---------------------------------------------------------


def test_a_run_read_for_polling_answers_as_the_queryset_would(rf, user, other_user, token, django_assert_num_queries):
    """`GET /api/runs/<id>` reads its run with statements compiled once (a client polls it
    while the run works): for every kind of run — blind and hidden, blind and voted, with
    images, votes, notes, tags, a failed side — the answer is the one the ordinary
    QuerySet gives, and a second read compiles nothing."""
    from django.db.models.sql.compiler import SQLCompiler

    from compare.api import serializers

    hidden = make_run(other_user, "blind, not voted", blind=True, images=1, tags=["poster"])
    voted = make_run(other_user, "blind, voted", blind=True, images=2, status=["succeeded", "failed"])
    Vote.objects.create(run=voted, user=user, verdict=Vote.Verdict.BETTER, winner=voted.generations.get(position=0))
    mine = make_run(user, "mine", images=1, tags=["b-tag", "a-tag"])
    Note.objects.create(run=mine, author=other_user, body="nice")
    Vote.objects.create(run=mine, user=other_user, verdict=Vote.Verdict.TIE)
    working = make_run(user, "working", status=["running", "succeeded"], images=1)
    request = rf.get("/api/runs/x")
    request.user = user
    for run in [hidden, voted, mine, working]:
        expected = serializers.run_detail(request, serializers.runs_queryset(user).get(pk=run.pk))
        read = serializers.run_for_viewer(user, run.pk)
        assert read is not None
        sides = read.generations.all()
        assert all(Generation.run.is_cached(g) and g.run is read for g in sides)
        assert all(Image.generation.is_cached(i) for g in sides for i in g.images.all())
        with django_assert_num_queries(0):  # sides, images, tags and owners all at hand
            assert serializers.run_detail(request, read) == expected
    assert serializers.run_for_viewer(user, Run._meta.pk.default()) is None  # no such run

    compiled = []
    original = SQLCompiler.as_sql

    def counted(self, *args, **kwargs):
        compiled.append(self.query.model)
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SQLCompiler, "as_sql", counted)
        read = serializers.run_for_viewer(user, mine.pk)
    assert read is not None and [t.name for t in read.tags.all()] == ["a-tag", "b-tag"]
    assert compiled == []
