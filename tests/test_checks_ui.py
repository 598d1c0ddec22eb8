"""The automatic checks in the product (compare/checks/report.py and its callers): when they
are queued (compare/tasks.py), what a run page's pane shows while they run and after, blind
runs, the history filter, the exports, the API, and the fallback rule "fall back when the
text check fails". The checks themselves (OCR, specification) are tests/test_checks.py."""

import csv
import io
import json
import re
import threading
import time
import uuid
import zipfile
from typing import Any

import pytest
from django.tasks import task_backends
from django.tasks.backends.dummy import DummyBackend
from django.tasks.base import TaskResultStatus

from compare import live, tasks
from compare.checks import runner
from compare.management.commands import serve
from compare.models import ApiToken, Generation, Run, Vote
from compare.taskbackend import ThreadPoolBackend
from tests.factories import DUMMY_TASKS, make_run, new_run, submit_and_wait, wait_for_generations
from tests.test_live import Page, out_of_band

# 钜 read as 巨: one misread character of the eight of 新春钜惠全场8折 (normalised), CER 1/8 = 12.5 %.
MISREAD: dict[str, Any] = {
    "engine": "rapidocr-onnxruntime 1.4.4",
    "text_unavailable": "",
    "max_cer": 0.0,
    "seconds": 0.62,
    "text_failed": True,
    "text_checked": True,
    "spec": [{"name": "count", "expected": "1", "actual": "1", "passed": True}],
    "images": [
        {
            "index": 0,
            "text": [
                {
                    "expected": "新春钜惠 全场 8 折",
                    "read": "新春巨惠全场8折",
                    "cer": 1 / 8,
                    "passed": False,
                    "diff": [["equal", "新春", "新春"], ["replace", "钜", "巨"], ["equal", "惠全场8折", "惠全场8折"]],
                },
                {
                    "expected": "Analytics Dashboard",
                    "read": "Analytics Dashboard",
                    "cer": 0.0,
                    "passed": True,
                    "diff": [["equal", "analyticsdashboard", "analyticsdashboard"]],
                },
            ],
            "spec": [
                {"name": "size", "expected": "1024×1024", "actual": "1536×1024", "passed": False},
                {"name": "format", "expected": "png", "actual": "png", "passed": True},
            ],
        }
    ],
}
READ_WELL: dict[str, Any] = {
    "engine": "rapidocr-onnxruntime 1.4.4",
    "text_unavailable": "",
    "max_cer": 0.0,
    "seconds": 0.5,
    "text_failed": False,
    "text_checked": True,
    "spec": [{"name": "count", "expected": "1", "actual": "1", "passed": True}],
    "images": [
        {
            "index": 0,
            "text": [
                {
                    "expected": "新春钜惠 全场 8 折",
                    "read": "新春钜惠全场8折",
                    "cer": 0.0,
                    "passed": True,
                    "diff": [["equal", "新春钜惠全场8折", "新春钜惠全场8折"]],
                }
            ],
            "spec": [{"name": "size", "expected": "1024×1024", "actual": "1024×1024", "passed": True}],
        }
    ],
}
NO_OCR = {
    "engine": "",
    "text_unavailable": "The text check is unavailable: the OCR engine could not be loaded (no module named rapidocr).",
    "max_cer": 0.0,
    "seconds": 0.01,
    "spec": [{"name": "count", "expected": "1", "actual": "1", "passed": True}],
    "images": [{"index": 0, "text": [], "spec": []}],
}
MODEL_WORDS = ("GPT Image", "gpt-image", "Nano Banana", "gemini", "1536×1024")


def dummy_backend() -> DummyBackend:
    """The task backend of DUMMY_TASKS: it keeps what was enqueued, runs nothing."""
    backend = task_backends["default"]
    assert isinstance(backend, DummyBackend)
    return backend


def checked(gen: Generation, status: str, checks: dict | None = None) -> Generation:
    """What the checks task writes when it is done (compare/checks/runner.py)."""
    gen.check_status, gen.checks = status, checks or {}
    gen.save()  # the model's signal tells open pages (compare/live.py), as the runner does
    return gen


def checks_block(html: str, gen: Generation) -> str:
    match = re.search(rf'<section class="checks[^"]*" id="checks-{gen.id}"(.*?)</section>', html, re.S)
    assert match, f"no checks block for {gen}"
    return match.group(1)


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


# --- the pane -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_pane_says_checking_then_shows_the_result_live(auth_client, user):
    live.forget()
    run = make_run(user, '海报 "新春钜惠 全场 8 折"', images=1, check_status="pending")
    gen = run.generations.get(position=0)
    page = Page(auth_client, run.get_absolute_url())
    assert "Checking text…" in checks_block(page.html, gen)
    # The generations are done, but the page keeps polling while the checks run.
    assert re.search(r'<div id="live-poll"[^>]*hx-get="/runs/', page.html)
    assert page.poll().status_code == 204

    checked(gen, "failed", MISREAD)
    Generation.objects.filter(run=run, position=1).update(check_status="passed", checks=READ_WELL)
    live.changed(run.id)
    answer = page.poll()
    assert answer.status_code == 286  # the last news: the checks are done, polling stops
    html = answer.content.decode()
    assert {f"pane-{g.id}" for g in run.generations.all()} <= set(out_of_band(html))
    block = checks_block(html, gen)
    assert "Checking text…" not in block
    assert "Text ✗ 1 of 2" in block and "Spec ✗ size" in block
    # The misread character, struck out, and what was read instead, marked.
    assert '<mark class="misread">' in block and "<del>钜</del>" in block and "<ins>巨</ins>" in block
    assert "expected 钜→ but read 巨" in text_of(block)
    assert "“新春钜惠 全场 8 折”" in block and "CER 12.5 %" in block and "✗ misread" in block
    assert "“Analytics Dashboard”" in block and "✓ read correctly" in block and "CER 0.0 %" in block
    assert "Read: Analytics Dashboard" in text_of(block)  # a string read well: as read, not normalised
    assert "✗ Size: 1536×1024 (asked 1024×1024)" in text_of(block)
    assert "Read by rapidocr-onnxruntime 1.4.4 in 0.6 s." in text_of(block)
    other = checks_block(html, run.generations.get(position=1))
    assert "Text ✓" in other and "Spec ✓" in other and "✗" not in other


@pytest.mark.django_db
def test_the_pane_says_why_the_text_check_could_not_run(auth_client, user):
    run = make_run(user, '海报 "新春钜惠"', images=1)
    gen = checked(run.generations.get(position=0), "unavailable", NO_OCR)
    block = checks_block(auth_client.get(run.get_absolute_url()).content.decode(), gen)
    assert re.search(
        r'title="The text check is unavailable: the OCR engine could not be loaded[^"]*">Text check unavailable<', block
    )
    assert "no module named rapidocr" in text_of(block) and "Spec ✓" in block


@pytest.mark.django_db
def test_a_side_never_checked_shows_no_checks(auth_client, user):
    run = make_run(user, images=1)
    assert 'class="checks' not in auth_client.get(run.get_absolute_url()).content.decode()


@pytest.mark.django_db
def test_a_blind_pane_shows_the_text_check_but_no_model_size_or_format(auth_client, user, other_user):
    run = make_run(other_user, '海报 "新春钜惠 全场 8 折"', blind=True, images=1)
    for gen in run.generations.all():
        checked(gen, "failed", MISREAD)
    html = auth_client.get(run.get_absolute_url()).content.decode()
    for gen in run.generations.all():
        block = checks_block(html, gen)
        assert "<del>钜</del>" in block and "Spec ✗ size" in block and "✗ Size" in text_of(block)
        assert [w for w in MODEL_WORDS if w.lower() in block.lower()] == []
        assert "Sizes and formats appear once you vote" in block
        assert "in 0.6 s" not in block  # how long a check took follows the image's size


# --- when the checks run -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_success_is_marked_checking_and_its_check_is_queued(user, settings, simulator):
    settings.TASKS = DUMMY_TASKS
    run = new_run(user, 'a poster "SALE"')
    gen = run.generations.get(position=0)
    dummy_backend().clear()
    assert tasks.run_generation(gen.id) == "succeeded"
    gen.refresh_from_db()
    # Done at once (the image shows), the check pending, and queued as a task of its own.
    assert gen.status == "succeeded" and gen.check_status == "pending" and gen.images.exists()
    queued = [r for r in dummy_backend().results if r.task.name == "check"]
    assert [r.args for r in queued] == [[str(gen.id)]]


@pytest.mark.django_db(transaction=True)
def test_a_reused_result_is_checked_too(user, settings, simulator):
    settings.TASKS = DUMMY_TASKS
    first = new_run(user, 'a poster "SALE"')
    tasks.run_generation(first.generations.get(position=0).id)
    again = new_run(user, 'a poster "SALE"')
    gen = again.generations.get(position=0)
    dummy_backend().clear()
    assert tasks.run_generation(gen.id) == "cached"
    gen.refresh_from_db()
    assert gen.cached_from_id and gen.check_status == "pending"
    assert [r.args for r in dummy_backend().results if r.task.name == "check"] == [[str(gen.id)]]


@pytest.mark.django_db
def test_checks_lost_in_a_restart_are_queued_again(user, settings):
    settings.TASKS = DUMMY_TASKS
    run = make_run(user, images=1)
    waiting = checked(run.generations.get(position=0), "pending")
    checked(run.generations.get(position=1), "passed", READ_WELL)
    dummy_backend().clear()
    serve.resume_unfinished()
    assert [r.args for r in dummy_backend().results if r.task.name == "check"] == [[str(waiting.id)]]


# --- history, exports, API ------------------------------------------------------------------------


def prompts(client, query: str) -> list[str]:
    html = client.get(f"/runs/{query}").content.decode()
    return sorted(re.findall(r'<p class="prompt"><a href="[^"]+">([^<]*)</a></p>', html))


@pytest.mark.django_db
def test_history_filters_by_check_outcome_and_its_exports_follow(auth_client, user):
    for prompt, statuses in [("both pass", ("passed", "passed")), ("one fails", ("passed", "failed"))]:
        run = make_run(user, prompt, images=1)
        for gen, status in zip(run.generations.all(), statuses, strict=True):
            checked(gen, status, MISREAD if status == "failed" else READ_WELL)
    no_ocr = make_run(user, "no ocr", images=1)
    checked(no_ocr.generations.get(position=0), "unavailable", NO_OCR)
    make_run(user, "never checked", images=1)

    assert prompts(auth_client, "?checks=failed") == ["one fails"]
    assert prompts(auth_client, "?checks=passed") == ["both pass", "one fails"]
    assert prompts(auth_client, "?checks=unavailable") == ["no ocr"]
    assert len(prompts(auth_client, "")) == 4
    html = auth_client.get("/runs/?checks=failed").content.decode()
    assert re.search(r'<option value="failed" selected>Failed</option>', html)
    assert 'href="/runs/export.csv?checks=failed"' in html
    bad = auth_client.get("/runs/?checks=maybe").content.decode()
    assert "Checks: Select a valid choice." in bad and prompts(auth_client, "?checks=maybe") == []

    rows = list(csv.DictReader(io.StringIO(csv_text(auth_client, "/runs/export.csv?checks=failed"))))
    assert [r["prompt"] for r in rows] == ["one fails"]
    assert rows[0]["check_status"] == "gpt-image-2=passed, gemini-3-pro-image=failed"
    assert rows[0]["checks"] == (
        "gpt-image-2: text 1/1, CER 0.0 %; spec ok | gemini-3-pro-image: text 1/2, CER 12.5 %; spec failed: size"
    )
    body = auth_client.get("/runs/export.json?checks=failed").json()
    assert body["filters"] == {"checks": "failed"} and body["count"] == 1
    sides = body["results"][0]["checks"]
    assert [(s["model"], s["check_status"]) for s in sides] == [
        ("gpt-image-2", "passed"),
        ("gemini-3-pro-image", "failed"),
    ]
    assert sides[1]["checks"] == MISREAD and sides[1]["summary"].startswith("text 1/2")


@pytest.mark.django_db
def test_text_check_failed_is_a_filter_of_its_own(auth_client, user):
    """A side that failed only its specification (wrong size, text read well) is a failed
    check but not a failed text check; a misread string is both."""
    misread = make_run(user, "misread", images=1)
    checked(misread.generations.get(position=0), "failed", MISREAD)
    wrong_size = make_run(user, "wrong size", images=1)
    spec_only = {
        **READ_WELL,
        "images": [{**READ_WELL["images"][0], "spec": [{**MISREAD["images"][0]["spec"][0]}]}],
    }
    checked(wrong_size.generations.get(position=0), "failed", spec_only)

    assert prompts(auth_client, "?checks=failed") == ["misread", "wrong size"]
    assert prompts(auth_client, "?checks=text_failed") == ["misread"]
    html = auth_client.get("/runs/?checks=text_failed").content.decode()
    assert '<option value="text_failed" selected>Text check failed</option>' in html


def csv_text(client, url: str) -> str:
    return b"".join(client.get(url).streaming_content).decode("utf-8-sig")


@pytest.mark.django_db
def test_exports_of_a_blind_run_name_sides_and_keep_sizes_back(auth_client, user, other_user):
    run = make_run(other_user, "blind poster", blind=True, images=1)
    for gen in run.generations.all():
        checked(gen, "failed", MISREAD)
    rows = list(csv.DictReader(io.StringIO(csv_text(auth_client, "/runs/export.csv"))))
    assert rows[0]["check_status"] == "side A=failed, side B=failed"
    assert "gpt" not in rows[0]["checks"] and "spec failed: size" in rows[0]["checks"]
    side = auth_client.get("/runs/export.json").json()["results"][0]["checks"][0]
    assert side["model"] is None and side["side"] == "A"
    assert side["checks"]["images"][0]["spec"][0] == {"name": "size", "expected": None, "actual": None, "passed": False}
    assert side["checks"]["images"][0]["text"] == MISREAD["images"][0]["text"] and "seconds" not in side["checks"]
    manifest = run_json(auth_client, run)
    assert [g["check_status"] for g in manifest["generations"]] == ["failed", "failed"]
    assert "1536×1024" not in json.dumps(manifest, ensure_ascii=False)


def run_json(client, run: Run) -> dict:
    response = client.get(f"/runs/{run.id}/export.zip")
    assert response.status_code == 200
    return json.loads(zipfile.ZipFile(io.BytesIO(response.content)).read("run.json"))


@pytest.mark.django_db
def test_the_run_zip_carries_the_whole_checks_object(auth_client, user):
    run = make_run(user, "poster", images=1)
    checked(run.generations.get(position=1), "failed", MISREAD)
    manifest = run_json(auth_client, run)
    assert [(g["model_key"], g["check_status"]) for g in manifest["generations"]] == [
        ("gpt-image-2", ""),
        ("gemini-3-pro-image", "failed"),
    ]
    assert manifest["generations"][1]["checks"] == MISREAD


@pytest.mark.django_db
def test_the_api_returns_each_sides_checks(client, user, other_user):
    token = ApiToken.issue(user, "tests")[1]
    headers = {"Authorization": f"Bearer {token}"}
    run = make_run(user, "poster", images=1)
    checked(run.generations.get(position=1), "failed", MISREAD)
    body = client.get(f"/api/runs/{run.id}", headers=headers).json()
    assert [(g["check_status"], g["checks"]) for g in body["generations"]] == [("", {}), ("failed", MISREAD)]
    listed = client.get("/api/runs", headers=headers).json()
    assert [g["check_status"] for g in listed["results"][0]["generations"]] == ["", "failed"]

    hidden = make_run(other_user, "blind poster", blind=True, images=1)
    for gen in hidden.generations.all():
        checked(gen, "failed", MISREAD)
    sides = client.get(f"/api/runs/{hidden.id}", headers=headers).json()["generations"]
    text = json.dumps(sides, ensure_ascii=False)
    assert "1536×1024" not in text and "钜" in text
    assert {g["check_status"] for g in sides} == {"failed"} and sides[0]["checks"]["spec"][0]["actual"] is None


# --- the fallback rule ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_option_needs_something_to_fall_back_to(auth_client, user):
    response = auth_client.post(
        "/", {"prompt": 'poster "SALE"', "models": ["gpt-image-2"], "fallback_on_text_check": "on"}
    )
    assert response.status_code == 400
    assert "Choose a fallback model or a fallback quality first" in response.content.decode()
    assert not Run.objects.exists()
    page = auth_client.get("/").content.decode()
    assert re.search(
        r'<input type="checkbox" name="fallback_on_text_check"[^>]*>\s*Fall back when the text check fails', page
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("option", "status", "checks", "expected"),
    [
        (True, "failed", MISREAD, True),
        (False, "failed", MISREAD, False),  # the option is off
        (True, "passed", READ_WELL, False),  # the text was read well
        (True, "unavailable", NO_OCR, False),  # no verdict on the text
        # Only the specification failed: the text check did not.
        (
            True,
            "failed",
            {**READ_WELL, "spec": [{"name": "count", "expected": "2", "actual": "1", "passed": False}]},
            False,
        ),
    ],
)
def test_a_failed_text_check_starts_the_fallback_only_when_asked(user, settings, option, status, checks, expected):
    settings.TASKS = DUMMY_TASKS
    run = make_run(user, options={"fallback_model": "gpt-image-2", "fallback_on_text_check": option}, images=1)
    gen = checked(run.generations.get(position=1), status, checks)
    fallback = tasks.on_checks_failed(gen.id)
    assert (fallback is not None) == expected
    assert run.generations.count() == (3 if expected else 2)
    assert tasks.on_checks_failed(gen.id) is None  # one fallback per side


@pytest.mark.django_db
def test_the_pane_and_ledger_say_why_the_fallback_ran(auth_client, user, settings):
    settings.TASKS = DUMMY_TASKS
    run = make_run(user, options={"fallback_model": "gpt-image-2", "fallback_on_text_check": True}, images=1)
    tasks.on_checks_failed(checked(run.generations.get(position=1), "failed", MISREAD).id)
    html = auth_client.get(run.get_absolute_url()).content.decode()
    assert "Fallback for Nano Banana Pro, started because its text check failed." in html
    ledger = html[html.index('<details class="ledger"') :]
    assert '<th scope="row">Fallback</th>' in ledger and "for Nano Banana Pro: its text check failed" in ledger


@pytest.mark.django_db(transaction=True)
def test_end_to_end_a_misread_poster_falls_back_and_a_good_one_does_not(auth_client, simulator):
    prompt = 'A sale poster with the headline "新春钜惠 全场 8 折" [[swap@gemini:钜>巨]]'
    run, _gens = submit_and_wait(
        auth_client, prompt, fallback_model="gpt-image-2", fallback_on_text_check="on", regenerate="on", timeout=60
    )
    settled = wait_for_checks(run)
    by_key = {g.model_key: g for g in settled if not g.fallback_of_id}
    assert by_key["gpt-image-2"].check_status == "passed"
    assert by_key["gemini-3-pro-image"].check_status == "failed"
    misread = by_key["gemini-3-pro-image"].checks["images"][0]["text"][0]
    assert ["replace", "钜", "巨"] in misread["diff"]
    fallbacks = [g for g in settled if g.fallback_of_id]
    assert [(f.fallback_of_id, f.model_key) for f in fallbacks] == [(by_key["gemini-3-pro-image"].id, "gpt-image-2")]
    assert fallbacks[0].status == "succeeded" and fallbacks[0].check_status == "passed"
    page = auth_client.get(run.get_absolute_url()).content.decode()
    assert "<del>钜</del>" in page and "started because its text check failed" in page

    off, _ = submit_and_wait(auth_client, prompt, fallback_model="gpt-image-2", regenerate="on", timeout=60)
    assert len(wait_for_checks(off)) == 2  # the option off: no fallback


def wait_for_checks(run: Run, timeout: float = 60.0) -> list[Generation]:
    """Every side terminal and checked (fallbacks included)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gens = wait_for_generations(run, timeout)
        if all(g.check_status not in ("pending",) for g in gens):
            time.sleep(0.3)  # a fallback the last check started may just be appearing
            again = wait_for_generations(run, timeout)
            if len(again) == len(gens) and all(g.check_status != "pending" for g in again):
                return again
        time.sleep(0.1)
    raise AssertionError("checks still pending")


@pytest.mark.django_db
def test_after_the_vote_a_blind_pane_shows_sizes_too(auth_client, user, other_user):
    """Once the viewer voted, the blind run's pane shows sizes like any other."""
    run = make_run(other_user, "blind poster", blind=True, images=1)
    for gen in run.generations.all():
        checked(gen, "failed", MISREAD)
    Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.TIE)
    block = checks_block(auth_client.get(run.get_absolute_url()).content.decode(), run.generations.get(position=0))
    assert "✗ Size: 1536×1024 (asked 1024×1024)" in text_of(block)


@pytest.mark.django_db(transaction=True)
def test_checks_waiting_for_the_ocr_engine_never_hold_up_a_generation(monkeypatch):
    """The checks get a small thread pool of their own (compare/taskbackend.py): with every
    check stuck, a generation still starts, even in a pool of one thread."""
    release = threading.Event()
    monkeypatch.setattr(runner, "check_generation", lambda generation_id: release.wait(30) and "")
    backend = ThreadPoolBackend("isolated", {"OPTIONS": {"max_workers": 1}})
    try:
        stuck = [backend.enqueue(tasks.check, [str(uuid.uuid4())], {}) for _ in range(3)]
        started = backend.enqueue(tasks.generate, [str(uuid.uuid4())], {})  # no such row: "skipped"
        deadline = time.monotonic() + 20
        while started.status != TaskResultStatus.SUCCESSFUL and time.monotonic() < deadline:
            time.sleep(0.02)
        assert started.status == TaskResultStatus.SUCCESSFUL and started.return_value == "skipped"
        assert [r.status for r in stuck] != [TaskResultStatus.SUCCESSFUL] * 3
    finally:
        release.set()
        backend.shutdown(wait=True)


@pytest.mark.django_db
def test_a_history_row_says_how_its_checks_went_without_naming_a_blind_side(auth_client, user, other_user):
    run = make_run(user, "poster", images=1)
    checked(run.generations.get(position=0), "passed", READ_WELL)
    checked(run.generations.get(position=1), "failed", MISREAD)
    blind_run = make_run(other_user, "blind poster", blind=True, images=1)
    for gen in blind_run.generations.all():
        checked(gen, "passed", READ_WELL)
    html = auth_client.get("/runs/").content.decode()
    assert (
        '<span class="badge check check-failed" title="GPT Image 2: Text ✓, Spec ✓; '
        'Nano Banana Pro: Text ✗ 1 of 2, Spec ✗ size">checks failed</span>'
    ) in html
    assert '<span class="badge check check-passed" title="Side A: Text ✓, Spec ✓; Side B: Text ✓, Spec ✓">' in html


@pytest.mark.django_db
def test_a_side_of_two_images_lists_each_image_and_the_count(auth_client, user):
    run = make_run(user, 'poster "SALE"', images=2, options={"n": 2})
    two = {
        **READ_WELL,
        "spec": [{"name": "count", "expected": "2", "actual": "2", "passed": True}],
        "images": [READ_WELL["images"][0], {**MISREAD["images"][0], "index": 1}],
    }
    gen = checked(run.generations.get(position=0), "failed", two)
    block = text_of(checks_block(auth_client.get(run.get_absolute_url()).content.decode(), gen))
    assert "Text ✗ 1 of 3" in block and "Spec ✗ size" in block
    assert block.index("Image 1") < block.index("✓ read correctly") < block.index("Image 2") < block.index("✗ misread")
    assert "All images" in block and "✓ Images: 2" in block


@pytest.mark.django_db
def test_what_was_read_is_shown_as_text_and_odd_records_do_not_break_the_page(auth_client, user):
    hostile = "<script>alert(1)</script>"
    run = make_run(user, "poster", images=1)
    text = {"expected": hostile, "read": "<b>x</b>", "cer": 0.5, "passed": False}
    text["diff"] = [["replace", "<script>", "<b>"], ["equal", "alert(1)", "alert(1)"], ["delete", "</script>", ""]]
    gen = checked(run.generations.get(position=0), "failed", {"images": [{"index": 0, "text": [text]}]})
    odd = checked(run.generations.get(position=1), "failed", {"images": "x", "spec": [1, None, {"passed": 0}]})
    response = auth_client.get(run.get_absolute_url())
    assert response.status_code == 200
    html = response.content.decode()
    block = checks_block(html, gen)
    assert "<script>" not in block and "<b>" not in block
    assert "<del>&lt;script&gt;</del>" in block and "<ins>&lt;b&gt;</ins>" in block
    assert "Spec ✗" in checks_block(html, odd)


@pytest.mark.django_db
def test_a_fallback_for_a_failed_side_says_so(auth_client, user, settings):
    settings.TASKS = DUMMY_TASKS
    run = make_run(user, status=["succeeded", "failed"], options={"fallback_model": "gpt-image-2"}, images=1)
    assert tasks.start_fallback(run.generations.get(position=1)) is not None
    html = auth_client.get(run.get_absolute_url()).content.decode()
    assert "Fallback for Nano Banana Pro, started because it failed." in html
    assert "for Nano Banana Pro: it failed" in html


@pytest.mark.django_db
def test_the_scorecard_aggregates_the_checks_per_model_with_intervals(auth_client, user, other_user):
    """3 of 4 gpt-image-2 results read exactly → 75 %, Wilson 95 % [30–95 %] (by hand:
    centre (0.75 + 1.92/8)/(1 + 3.84/4) = 0.505, half-width 0.449); Nano Banana Pro 0 of 1
    passed (its text misread). A blind run of another author the viewer has not judged is
    left out, so the page cannot name its sides."""
    for i in range(4):
        run = make_run(user, f"poster {i}", images=1)
        gpt, nano = run.ordered_generations()
        checked(gpt, "passed" if i else "failed", READ_WELL if i else MISREAD)
        if i == 0:
            checked(nano, "failed", MISREAD)
    hidden = make_run(other_user, "blind", blind=True, images=1)
    for gen in hidden.generations.all():
        checked(gen, "passed", READ_WELL)

    html = auth_client.get("/scorecard").content.decode()
    table = html[html.index('class="board check-board"') :]
    rows = dict(re.findall(r'<tr data-model="([^"]+)">(.*?)</tr>', table, re.S))
    gpt_cells = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", rows["gpt-image-2"])).strip()
    assert gpt_cells == "GPT Image 2 75% [30–95] 3 of 4 75% [30–95] 3 of 4 0"
    nano_cells = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", rows["gemini-3-pro-image"])).strip()
    assert nano_cells == "Nano Banana Pro 0% [0–79] 0 of 1 0% [0–79] 0 of 1 0"


@pytest.mark.django_db(transaction=True)
def test_checks_that_read_no_pixels_run_at_once_and_the_ocr_ones_as_a_task(auth_client, simulator, monkeypatch):
    """Size, format and count read headers only: they run as soon as the result is stored,
    not as a task of their own (a broker round trip in the scale-out profile); the text
    read back by OCR still goes to the checks' own task, so the image never waits for it."""
    sent = []
    enqueue = ThreadPoolBackend.enqueue

    def recorded(backend, task, args, kwargs):
        if task.module_path == "compare.tasks.check":
            sent.extend(args)
        return enqueue(backend, task, args, kwargs)

    monkeypatch.setattr(ThreadPoolBackend, "enqueue", recorded)
    _run, plain = submit_and_wait(auth_client, "a bakery poster, no words")
    assert [g.check_status for g in plain] == ["passed", "passed"]
    assert all(g.checks["spec"] and g.checks["images"][0]["spec"] for g in plain)  # size, format, count checked
    assert sent == []
    _run, worded = submit_and_wait(auth_client, 'a bakery poster that says "Fresh Bread"')
    assert sorted(sent) == sorted(str(g.pk) for g in worded)
    assert all(g.checks["text_checked"] for g in worded) and {g.check_status for g in worded} == {"passed"}
