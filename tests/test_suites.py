"""Suites in the browser and the admin, and suite files: editing with version bumps, option
rules shared with the new-comparison form, strict import (JSON and YAML), export round
trip, and the built-in reference suite."""

import json

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile

from compare.suites import builtin, dispatch, edits, io
from compare.suites.models import Suite, SuiteCase, SuiteRun
from tests.factories import make_user

pytestmark = pytest.mark.django_db

CASE = {
    "title": "Chinese sale poster",
    "prompt": 'A red and gold poster with the headline "新春钜惠 全场 8 折"',
    "tags": "poster zh",
    "expectations": "新春钜惠 全场 8 折",
    "aspect_ratio": "3:4",
    "quality": "high",
}

SUITE_YAML = """\
name: Posters
description: Two posters
cases:
  - title: Chinese sale poster
    prompt: 'A red and gold poster with the headline "新春钜惠 全场 8 折"'
    tags: [poster, zh]
    options: {aspect_ratio: "3:4", quality: high}
    expectations: ["新春钜惠 全场 8 折"]
  - prompt: A plain English poster that says "Grand Opening"
"""


def upload(content: str | bytes, name: str) -> SimpleUploadedFile:
    data = content.encode() if isinstance(content, str) else content
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def make_suite(name: str = "Posters", cases: int = 2) -> Suite:
    return edits.create_suite(
        name=name, cases=[io.CaseData(prompt=f"prompt {i}", title=f"case {i}") for i in range(cases)]
    )


def texts(response) -> str:
    return response.content.decode()


# --- the browser -------------------------------------------------------------------------------


def test_create_a_suite_then_add_edit_reorder_and_delete_cases_each_raising_the_version(auth_client, user):
    response = auth_client.post("/suites/new", {"name": "Posters", "description": "For the spring sale"})
    suite = Suite.objects.get(name="Posters")
    assert response.status_code == 302 and response["Location"] == f"/suites/{suite.pk}/"
    assert suite.version == 1 and suite.created_by == user and suite.cases.count() == 0

    response = auth_client.post(f"/suites/{suite.pk}/cases/add", CASE, follow=True)
    case = suite.cases.get()
    assert (case.title, case.tags, case.expectations) == (
        "Chinese sale poster",
        ["poster", "zh"],
        ["新春钜惠 全场 8 折"],
    )
    assert case.options == {"aspect_ratio": "3:4", "quality": "high"}
    assert "version 2" in texts(response) and "Aspect ratio 3:4 · Quality High" in texts(response)

    auth_client.post(f"/suites/{suite.pk}/cases/add", {"prompt": 'A poster that says "Grand Opening"'})
    second = suite.cases.get(position=1)
    suite.refresh_from_db()
    assert suite.version == 3 and second.options == {} and second.title == ""

    auth_client.post(f"/suites/{suite.pk}/cases/{case.pk}/edit", {**CASE, "title": "Sale poster", "quality": ""})
    case.refresh_from_db()
    suite.refresh_from_db()
    assert case.title == "Sale poster" and case.options == {"aspect_ratio": "3:4"} and suite.version == 4

    # Saving without a change is not an edit.
    auth_client.post(f"/suites/{suite.pk}/cases/{case.pk}/edit", {**CASE, "title": "Sale poster", "quality": ""})
    suite.refresh_from_db()
    assert suite.version == 4

    auth_client.post(f"/suites/{suite.pk}/cases/{second.pk}/move", {"direction": "up"})
    assert list(suite.cases.values_list("pk", flat=True)) == [second.pk, case.pk]
    suite.refresh_from_db()
    assert suite.version == 5
    # Already first: nothing moves, no new version.
    auth_client.post(f"/suites/{suite.pk}/cases/{second.pk}/move", {"direction": "up"})
    suite.refresh_from_db()
    assert suite.version == 5

    auth_client.post(f"/suites/{suite.pk}/cases/{second.pk}/delete")
    suite.refresh_from_db()
    assert list(suite.cases.values_list("pk", "position")) == [(case.pk, 0)] and suite.version == 6

    page = texts(auth_client.get(f"/suites/{suite.pk}/"))
    assert "Sale poster" in page and "version 6" in page and "#poster" in page


def test_rename_keeps_the_version_and_refuses_a_taken_name(auth_client):
    suite, other = make_suite("Posters"), make_suite("Mockups")
    response = auth_client.post(f"/suites/{suite.pk}/edit", {"name": "Mockups", "description": ""})
    assert response.status_code == 422 and "A suite with this name exists already" in texts(response)
    auth_client.post(f"/suites/{suite.pk}/edit", {"name": "Spring posters", "description": "new words"})
    suite.refresh_from_db()
    assert (suite.name, suite.description, suite.version) == ("Spring posters", "new words", 1)
    assert other.name == "Mockups"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("quality", "ultra", "Must be one of auto, low, medium, high, xhigh, max, pro."),
        ("n", "9", "Must be a whole number from 1 to 4."),
        ("size", "big", "Write the size as WIDTHxHEIGHT, e.g. 1536x1024."),
        ("output_compression", "80", "Compression applies to JPEG and WebP, not PNG."),
    ],
)
def test_invalid_options_are_refused_with_the_form_rules_message(auth_client, field, value, message):
    suite = make_suite(cases=1)
    response = auth_client.post(f"/suites/{suite.pk}/cases/add", {**CASE, field: value})
    assert response.status_code == 422
    assert message in texts(response)
    suite.refresh_from_db()
    assert suite.cases.count() == 1 and suite.version == 1


def test_a_transparent_background_needs_png_or_webp(auth_client):
    suite = make_suite(cases=1)
    case = suite.cases.get()
    response = auth_client.post(
        f"/suites/{suite.pk}/cases/{case.pk}/edit",
        {**CASE, "background": "transparent", "output_format": "jpeg"},
    )
    assert response.status_code == 422
    assert "A transparent background needs PNG or WebP output, not JPEG." in texts(response)
    case.refresh_from_db()
    assert case.options == {}


def test_a_prompt_of_invisible_characters_and_a_bad_tag_are_refused(auth_client):
    suite = make_suite(cases=0)
    response = auth_client.post(f"/suites/{suite.pk}/cases/add", {"prompt": "\u200b\u200b", "tags": "ok no!"})
    page = texts(response)
    assert response.status_code == 422 and "invisible characters alone do not count" in page
    assert "Tags: &#x27;no!&#x27; must be one word" in page
    assert not suite.cases.exists()


def test_the_builtin_suite_cannot_be_deleted_or_edited_but_can_be_duplicated(auth_client, user):
    suite = builtin.install(Suite)
    case = suite.cases.first()
    response = auth_client.post(f"/suites/{suite.pk}/delete", follow=True)
    assert "The built-in suite cannot be deleted" in texts(response)
    response = auth_client.post(f"/suites/{suite.pk}/cases/{case.pk}/delete", follow=True)
    assert "The built-in suite cannot be changed" in texts(response)
    auth_client.post(f"/suites/{suite.pk}/cases/add", CASE)
    suite.refresh_from_db()
    assert suite.cases.count() == 3 and suite.version == 1

    response = auth_client.post(f"/suites/{suite.pk}/duplicate")
    copy = Suite.objects.get(name=f"{builtin.NAME} (copy)")
    assert response["Location"] == copy.get_absolute_url()
    assert not copy.builtin and copy.created_by == user and copy.version == 1
    assert [c.snapshot() for c in copy.cases.all()] == [c.snapshot() for c in suite.cases.all()]
    auth_client.post(f"/suites/{copy.pk}/delete")
    assert not Suite.objects.filter(pk=copy.pk).exists() and Suite.objects.filter(pk=suite.pk).exists()


def test_deleting_a_suite_keeps_its_suite_runs(auth_client, user):
    suite = make_suite()
    SuiteRun.objects.create(suite=suite, suite_name=suite.name, cases=[], model_keys=[], author=user)
    auth_client.post(f"/suites/{suite.pk}/delete")
    assert SuiteRun.objects.get().suite is None


def test_list_page_shows_name_version_cases_and_last_run(auth_client, user):
    suite = make_suite("Posters", cases=3)
    edits.add_case(suite, io.CaseData(prompt="one more"))
    run = SuiteRun.objects.create(suite=suite, suite_name=suite.name, cases=[], model_keys=[], author=user)
    page = texts(auth_client.get("/suites/"))
    assert "Posters" in page and "v2" in page and ">4<" in page
    assert f"/suite-runs/{run.pk}/" in page
    assert "New suite" in page and "Import" in page


def test_run_this_suite_starts_a_suite_run(auth_client, user, no_task_execution):
    suite = make_suite(cases=2)
    response = auth_client.post(
        f"/suites/{suite.pk}/run", {"models": ["gpt-image-2", "gemini-3-pro-image"], "samples": 3}
    )
    suite_run = SuiteRun.objects.get()
    assert response.status_code == 302 and response["Location"] == suite_run.get_absolute_url()
    assert suite_run.runs.count() == 6 and suite_run.samples == 3 and suite_run.author == user


def test_run_this_suite_refuses_bad_samples_and_an_empty_suite(auth_client, no_task_execution):
    suite = make_suite(cases=1)
    response = auth_client.post(f"/suites/{suite.pk}/run", {"models": ["gpt-image-2"], "samples": 21})
    # The words of compare/suites/dispatch.py, as the API and the command line say them.
    assert response.status_code == 422 and "Samples per case must be a whole number from 1 to 20, not 21." in texts(
        response
    )
    empty = make_suite("Empty", cases=0)
    response = auth_client.post(f"/suites/{empty.pk}/run", {"models": ["gpt-image-2"], "samples": 2})
    assert response.status_code == 422 and "has no cases yet" in texts(response)
    assert not SuiteRun.objects.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"models": ["gpt-image-2"], "samples": 0}, "Samples per case must be a whole number from 1 to 20, not 0."),
        ({"models": ["gpt-image-2"], "samples": 20}, None),
        ({"models": ["gpt-image-2"], "samples": 1}, None),
    ],
)
def test_the_run_form_and_the_dispatcher_share_the_samples_rule(data, message):
    from compare.suites.dispatch import SuiteRunRefused, check_samples
    from compare.suites.forms import RunSuiteForm

    form = RunSuiteForm(data)
    assert form.is_valid() is (message is None)
    if message is None:
        assert form.cleaned_data["samples"] == check_samples(data["samples"])
    else:
        assert form.errors["samples"] == [message]
        with pytest.raises(SuiteRunRefused, match=message.replace(".", r"\.")):
            check_samples(data["samples"])


def test_the_run_form_refuses_a_model_without_a_key_in_the_dispatchers_words(auth_client, settings):
    settings.COMPARE_SIMULATOR_ENABLED = False
    suite = make_suite(cases=1)
    response = auth_client.post(f"/suites/{suite.pk}/run", {"models": ["gpt-image-2"], "samples": 2})
    assert response.status_code == 422
    assert "Not available right now (no API key): GPT Image 2." in texts(response)
    assert not SuiteRun.objects.exists()


def test_the_estimate_fragment_counts_generations(auth_client):
    suite = make_suite(cases=3)
    response = auth_client.get(f"/suites/{suite.pk}/estimate?models=gpt-image-2&models=gemini-3-pro-image&samples=10")
    page = texts(response)
    assert response.status_code == 200 and "60 generations" in page and "estimated" in page
    # Quality auto: the range the provider may pick from, and the day the prices were checked.
    span = dispatch.estimate_range(suite, ["gpt-image-2", "gemini-3-pro-image"], 10)
    assert span is not None and span.low < span.high
    assert str(span) in page and "prices as of 27 Nov 2026" in page
    for query in ["models=nope&samples=3", "models=gpt-image-2&samples=99", "samples=-1"]:
        response = auth_client.get(f"/suites/{suite.pk}/estimate?{query}")
        assert response.status_code == 200 and "Pick at least one model and 1–20 samples." in texts(response)


# --- edits that race with a delete ------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        lambda case: edits.move_case(case, 1),
        lambda case: edits.update_case(case, io.CaseData(prompt="changed")),
        lambda case: edits.delete_case(case),
    ],
    ids=["move", "update", "delete"],
)
def test_an_edit_of_a_case_deleted_meanwhile_raises_gone_and_changes_nothing(change):
    suite = make_suite(cases=2)
    case = suite.cases.get(position=0)  # what the page looked up…
    SuiteCase.objects.filter(pk=case.pk).delete()  # …before someone else deleted it
    with pytest.raises(edits.Gone, match="This case was deleted meanwhile"):
        change(case)
    suite.refresh_from_db()
    assert suite.version == 1 and list(suite.cases.values_list("title", flat=True)) == ["case 1"]


def test_adding_to_a_suite_deleted_meanwhile_raises_gone():
    suite = make_suite(cases=1)
    Suite.objects.filter(pk=suite.pk).delete()
    with pytest.raises(edits.Gone, match="This suite was deleted meanwhile"):
        edits.add_case(suite, io.CaseData(prompt="a fox"))
    assert not SuiteCase.objects.filter(suite_id=suite.pk).exists()


def deleted_first(monkeypatch, name: str, delete):
    """`edits.<name>` as if someone deleted a row between the page's lookup and the edit's lock."""
    original = getattr(edits, name)

    def racing(*args, **kwargs):
        delete()
        return original(*args, **kwargs)

    monkeypatch.setattr(edits, name, racing)


@pytest.mark.parametrize(
    ("name", "path", "data"),
    [
        ("move_case", "cases/{case}/move", {"direction": "down"}),
        ("update_case", "cases/{case}/edit", {"prompt": "a changed prompt"}),
        ("delete_case", "cases/{case}/delete", {}),
    ],
)
def test_a_case_deleted_meanwhile_gets_a_clear_message_not_a_500(auth_client, monkeypatch, name, path, data):
    suite = make_suite(cases=2)
    case = suite.cases.get(position=0)
    deleted_first(monkeypatch, name, lambda: SuiteCase.objects.filter(pk=case.pk).delete())
    response = auth_client.post(f"/suites/{suite.pk}/" + path.format(case=case.pk), data)
    assert response.status_code == 302 and response["Location"] == suite.get_absolute_url()
    page = texts(auth_client.get(response["Location"]))
    assert "This case was deleted meanwhile. Nothing was changed." in page
    suite.refresh_from_db()
    assert suite.version == 1 and suite.cases.count() == 1


def test_a_suite_deleted_meanwhile_gets_a_clear_message_not_a_500(auth_client, monkeypatch):
    suite = make_suite(cases=1)
    deleted_first(monkeypatch, "add_case", lambda: Suite.objects.filter(pk=suite.pk).delete())
    response = auth_client.post(f"/suites/{suite.pk}/cases/add", {"prompt": "a fox"})
    assert response.status_code == 302 and response["Location"] == "/suites/"
    assert "This suite was deleted meanwhile. Nothing was changed." in texts(auth_client.get("/suites/"))
    assert not SuiteCase.objects.filter(suite_id=suite.pk).exists()


def test_renaming_a_suite_deleted_meanwhile_gets_a_clear_message_not_a_500(auth_client, monkeypatch):
    from compare.views import suites as views

    suite = make_suite(cases=1)
    original = views._editable

    def racing(request, found):
        Suite.objects.filter(pk=found.pk).delete()
        return original(request, found)

    monkeypatch.setattr(views, "_editable", racing)
    response = auth_client.post(f"/suites/{suite.pk}/edit", {"name": "Renamed", "description": ""})
    assert response.status_code == 302 and response["Location"] == "/suites/"
    assert "This suite was deleted meanwhile." in texts(auth_client.get("/suites/"))
    assert not Suite.objects.filter(name="Renamed").exists()


def test_two_duplicates_at_once_get_a_clear_message_not_a_500(auth_client, monkeypatch):
    suite = make_suite(cases=1)
    taken = make_suite("Posters (copy)", cases=0)
    # The other copy took the free name between `free_name`'s look and the insert.
    monkeypatch.setattr(edits, "free_name", lambda base: taken.name)
    response = auth_client.post(f"/suites/{suite.pk}/duplicate")
    assert response.status_code == 302 and response["Location"] == suite.get_absolute_url()
    assert "Another copy of this suite was made at the same moment" in texts(auth_client.get(response["Location"]))
    assert list(Suite.objects.filter(name__startswith="Posters").values_list("name", flat=True)) == [
        "Posters",
        "Posters (copy)",
    ]


# --- import and export --------------------------------------------------------------------------


def test_import_yaml_creates_a_suite(auth_client, user):
    response = auth_client.post("/suites/import", {"file": upload(SUITE_YAML, "posters.yaml")})
    suite = Suite.objects.get(name="Posters")
    assert response["Location"] == suite.get_absolute_url()
    assert suite.version == 1 and suite.created_by == user and suite.description == "Two posters"
    first, second = suite.cases.all()
    assert first.options == {"aspect_ratio": "3:4", "quality": "high"} and first.tags == ["poster", "zh"]
    assert first.expectations == ["新春钜惠 全场 8 折"]
    assert second.prompt == 'A plain English poster that says "Grand Opening"' and second.options == {}


def test_import_json_creates_a_suite(auth_client):
    case = {"prompt": 'A dashboard titled "Analytics Dashboard"', "tags": ["ui-mockup"]}
    options = {"grounding": True, "regenerate": False, "size": "1536X1024", "n": 2}
    document = {"name": "UI", "cases": [case, {**case, "options": options}]}
    auth_client.post("/suites/import", {"file": upload(json.dumps(document), "ui.json")})
    first, second = Suite.objects.get(name="UI").cases.all()
    assert first.tags == ["ui-mockup"] and first.options == {}
    # Stored as the new-comparison form cleans them; a switch that is off is left out.
    assert second.options == {"grounding": True, "size": "1536x1024", "n": 2}


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ("name: [unclosed", "bad.yaml", "Not valid YAML"),
        ('{"name": "x", "cases": [', "bad.json", "Not valid JSON"),
        ("name: x\ncases: [{prompt: 5}]\n", "types.yaml", "case 1: &#x27;prompt&#x27; must be text"),
        ("name: x\ncases: [{prompt: null}]\n", "null.yaml", "case 1: &#x27;prompt&#x27; is required"),
        ('{"cases": [{"prompt": "a"}]}', "noname.json", "&#x27;name&#x27; is required"),
        ("name: x\ncases: [{prompt: a, tags: poster}]\n", "tags.yaml", "case 1: &#x27;tags&#x27; must be a list"),
        (
            "name: x\ncases: [{prompt: a}, {prompt: b, options: {quality: ultra}}]\n",
            "q.yaml",
            "case 2: &#x27;options.quality&#x27; must be one of auto, low, medium, high",
        ),
        (
            "name: x\ncases: [{prompt: a, options: {sharpness: 3}}]\n",
            "u.yaml",
            "case 1: &#x27;options.sharpness&#x27; is not an option",
        ),
        ("name: x\ncases: [{prompt: a, options: {aspect_ratio: 3:4}}]\n", "a.yaml", "write &quot;3:4&quot;"),
        (
            "name: x\ncases: [{prompt: a, colour: red}]\n",
            "k.yaml",
            "case 1: &#x27;colour&#x27; is not a field of a case",
        ),
        ("name: x\ncases: []\n", "e.yaml", "&#x27;cases&#x27; must be a list of at least one case"),
        ("- just\n- a list\n", "l.yaml", "The file must hold one suite"),
        ("!!python/object/apply:os.system ['echo hacked']\n", "evil.yaml", "a YAML tag this app does not read"),
        ("name: x\ncases:\n  - !!python/object/new:dict {}\n", "evil2.yaml", "a YAML tag this app does not read"),
        (b"\xff\xfe n\x00a\x00", "utf16.json", "The file is not UTF-8 text."),
        ("name: x", "suite.txt", "Choose a .json, .yaml or .yml file."),
    ],
)
def test_a_bad_file_gets_a_clear_message_and_writes_nothing(auth_client, content, name, message):
    response = auth_client.post("/suites/import", {"file": upload(content, name)})
    assert response.status_code == 422
    assert message in texts(response)
    assert not Suite.objects.filter(builtin=False).exists()


def test_a_10_mb_file_is_refused_before_it_is_parsed(auth_client):
    big = "name: x\ncases: [{prompt: a}]\n#" + "x" * (10 * 1024 * 1024)
    response = auth_client.post("/suites/import", {"file": upload(big, "big.yaml")})
    assert response.status_code == 422 and "a suite file may have at most 1,000,000" in texts(response)
    assert not Suite.objects.filter(builtin=False).exists()


def test_yaml_aliases_cannot_multiply_a_small_file_into_a_huge_suite(auth_client):
    prompt = "x" * 900_000
    content = f"name: x\ncases:\n  - {{prompt: &p {prompt}}}\n" + "  - {prompt: *p}\n" * 199
    response = auth_client.post("/suites/import", {"file": upload(content, "aliases.yaml")})
    assert response.status_code == 422
    assert "case 1: &#x27;prompt&#x27; is 900,000 characters; the limit is 32,000" in texts(response)
    assert "… and 180 more problems." in texts(response)
    assert not Suite.objects.filter(builtin=False).exists()


def test_the_file_format_names_every_option():
    from compare.options import OPTION_FIELDS

    assert io.__doc__ and all(name in io.__doc__ for name in OPTION_FIELDS)


def test_a_file_with_one_bad_case_imports_none_of_them(auth_client):
    cases = [{"prompt": f"case {i}"} for i in range(5)] + [{"prompt": "bad", "options": {"n": "two"}}]
    response = auth_client.post("/suites/import", {"file": upload(json.dumps({"name": "x", "cases": cases}), "x.json")})
    assert "case 6: &#x27;options.n&#x27; must be a whole number from 1 to 4" in texts(response)
    assert (
        not Suite.objects.filter(builtin=False).exists() and not SuiteCase.objects.filter(suite__builtin=False).exists()
    )


def test_export_then_import_gives_the_same_cases(auth_client):
    original = builtin.install(Suite)
    for fmt in ("json", "yaml"):
        response = auth_client.get(f"/suites/{original.pk}/export.{fmt}")
        assert response.status_code == 200
        assert response["Content-Disposition"].startswith(
            'attachment; filename="reference-poster-ui-mockup-infographic'
        )
        exported = response.content
        parsed = json.loads(exported) if fmt == "json" else yaml.safe_load(exported)
        assert parsed["name"] == builtin.NAME and parsed["version"] == 1
        # Same name: the import asks first; "Import as a new suite" makes a copy.
        confirm = auth_client.post("/suites/import", {"file": upload(exported, f"suite.{fmt}")})
        assert "A suite named “Reference: poster, UI mockup, infographic” exists" in texts(confirm)
        assert "cannot be replaced" in texts(confirm)
        document = confirm.context["confirm"].initial["document"]
        auth_client.post("/suites/import/confirm", {"document": document, "action": "copy"})
        copy = Suite.objects.exclude(pk=original.pk).get(builtin=False)
        assert [c.snapshot() for c in copy.cases.all()] == [c.snapshot() for c in original.cases.all()]
        copy.delete()


def test_importing_a_suite_of_the_same_name_makes_a_new_version_after_confirmation(auth_client):
    suite = make_suite("Posters", cases=1)
    response = auth_client.post("/suites/import", {"file": upload(SUITE_YAML, "posters.yml")})
    assert response.status_code == 200 and "Replace its cases (version 2)" in texts(response)
    suite.refresh_from_db()
    assert suite.version == 1 and suite.cases.count() == 1  # nothing changed until confirmed
    document = response.context["confirm"].initial["document"]
    auth_client.post("/suites/import/confirm", {"document": document, "action": "replace"})
    suite.refresh_from_db()
    assert suite.version == 2 and suite.cases.count() == 2 and suite.description == "Two posters"
    assert Suite.objects.filter(name__startswith="Posters").count() == 1


def test_a_tampered_confirmation_is_checked_again(auth_client):
    make_suite("Posters", cases=1)
    document = json.dumps({"name": "Posters", "cases": [{"prompt": "x", "options": {"quality": "ultra"}}]})
    response = auth_client.post("/suites/import/confirm", {"document": document, "action": "replace"})
    assert response.status_code == 422 and "must be one of" in texts(response)
    assert Suite.objects.get(name="Posters").version == 1
    response = auth_client.post("/suites/import/confirm", {"document": "{not json", "action": "replace"})
    assert response.status_code == 422 and "upload the file again" in texts(response)


# --- the built-in suite ----------------------------------------------------------------------------


def test_the_builtin_suite_has_the_three_reference_cases():
    suite = builtin.install(Suite)
    assert suite.builtin and suite.name == "Reference: poster, UI mockup, infographic"
    poster, mockup, infographic = suite.cases.all()
    assert poster.tags == ["poster", "zh"] and poster.expectations == ["新春钜惠 全场 8 折"]
    assert mockup.tags == ["ui-mockup"] and "Analytics Dashboard" in mockup.expectations
    assert infographic.tags == ["infographic"] and "How Coffee Gets to Your Cup" in infographic.expectations
    # Every expectation is a quoted text of its prompt, and every case passes the file rules.
    for case in (poster, mockup, infographic):
        assert all(f'"{text}"' in case.prompt for text in case.expectations)
        cleaned, problems = io.clean_case(case.snapshot(), "case")
        assert problems == [] and cleaned is not None and cleaned.fields() == case.snapshot()


def test_installing_again_refreshes_instead_of_duplicating():
    suite = builtin.install(Suite)
    assert builtin.install(Suite).pk == suite.pk
    suite.refresh_from_db()
    assert suite.version == 1
    suite.cases.first().delete()  # as if the cases in compare/suites/builtin.py had changed
    builtin.install(Suite)
    suite.refresh_from_db()
    assert suite.version == 2 and suite.cases.count() == 3 and Suite.objects.count() == 1


def reference_migration():
    import importlib

    return importlib.import_module("compare.migrations.0011_reference_suite")


@pytest.mark.django_db(transaction=True)
def test_migrate_creates_the_builtin_suite_from_its_own_frozen_copy(monkeypatch):
    """The migration does what it did when it shipped, whatever compare/suites/builtin.py says later."""
    from tests.test_migrations import latest, migrate

    old = migrate([("compare", "0010_suites_checks_limits")])
    old.get_model("compare", "Suite").objects.all().delete()  # going back keeps the suite: it is data by then
    monkeypatch.setattr(builtin, "CASES", [io.CaseData(prompt="a later edit of the built-in cases")])
    monkeypatch.setattr(builtin, "NAME", "A later name")
    migrate(latest())
    suite = Suite.objects.get(builtin=True)
    assert suite.name == "Reference: poster, UI mockup, infographic" and suite.version == 1
    assert [c.tags for c in suite.cases.all()] == [["poster", "zh"], ["ui-mockup"], ["infographic"]]
    assert suite.cases.all()[0].expectations == ["新春钜惠 全场 8 折"]
    # Back and forward again: still one built-in suite.
    migrate([("compare", "0010_suites_checks_limits")])
    migrate(latest())
    assert Suite.objects.filter(builtin=True).count() == 1


@pytest.mark.django_db(transaction=True)
def test_migrate_never_takes_over_a_teams_suite_of_the_same_name():
    from tests.test_migrations import latest, migrate

    old = migrate([("compare", "0010_suites_checks_limits")])
    OldSuite = old.get_model("compare", "Suite")
    OldSuite.objects.all().delete()
    theirs = OldSuite.objects.create(name=builtin.NAME, description="Our own posters", version=4)
    old.get_model("compare", "SuiteCase").objects.create(suite=theirs, position=0, prompt="our poster")
    migrate(latest())
    mine = Suite.objects.get(pk=theirs.pk)
    assert (mine.builtin, mine.description, mine.version) == (False, "Our own posters", 4)
    assert [c.prompt for c in mine.cases.all()] == ["our poster"]
    reference = Suite.objects.get(builtin=True)
    assert reference.name == f"{builtin.NAME} (built-in)" and reference.cases.count() == 3
    # A refresh finds the built-in one, not theirs.
    assert builtin.install(Suite).pk == reference.pk
    assert not Suite.objects.get(pk=theirs.pk).builtin


def test_the_migrations_frozen_cases_are_the_shipped_ones():
    """While compare/suites/builtin.py is unchanged, the migration's copy is the same; a change
    there needs a new data migration (this test says so by failing)."""
    migration = reference_migration()
    assert migration.NAME == builtin.NAME and migration.DESCRIPTION == builtin.DESCRIPTION
    assert migration.CASES == [case.fields() for case in builtin.CASES]


def test_install_never_takes_over_a_teams_suite_of_the_same_name():
    Suite.objects.filter(builtin=True).delete()
    theirs = make_suite(builtin.NAME, cases=1)
    reference = builtin.install(Suite)
    assert reference.pk != theirs.pk and reference.builtin and reference.name == f"{builtin.NAME} (built-in)"
    theirs.refresh_from_db()
    assert not theirs.builtin and theirs.version == 1 and [c.title for c in theirs.cases.all()] == ["case 0"]
    assert builtin.install(Suite).pk == reference.pk


# --- the admin ---------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def test_admin_pages_load(admin_client, user):
    suite = make_suite()
    reference = builtin.install(Suite)
    run = SuiteRun.objects.create(suite=suite, suite_name=suite.name, cases=[], model_keys=[], author=user)
    for url in [
        "/admin/compare/suite/",
        f"/admin/compare/suite/{suite.pk}/change/",
        f"/admin/compare/suite/{reference.pk}/change/",
        "/admin/compare/suite/add/",
        "/admin/compare/suiterun/",
        f"/admin/compare/suiterun/{run.pk}/change/",
    ]:
        assert admin_client.get(url).status_code == 200, url
    # The built-in suite is view-only there too.
    assert admin_client.post(f"/admin/compare/suite/{reference.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Suite.objects.filter(pk=reference.pk).exists()


def _admin_form(suite: Suite, **case_changes) -> dict:
    case = suite.cases.get()
    data = {
        "name": suite.name,
        "description": suite.description,
        "cases-TOTAL_FORMS": "1",
        "cases-INITIAL_FORMS": "1",
        "cases-MIN_NUM_FORMS": "0",
        "cases-MAX_NUM_FORMS": "1000",
        "cases-0-id": str(case.pk),
        "cases-0-suite": str(suite.pk),
        "cases-0-position": "0",
        "cases-0-title": case.title,
        "cases-0-prompt": case.prompt,
        "cases-0-tags": json.dumps(case.tags),
        "cases-0-options": json.dumps(case.options),
        "cases-0-expectations": json.dumps(case.expectations),
    }
    data.update({f"cases-0-{k}": v for k, v in case_changes.items()})
    return data


def test_admin_case_edits_raise_the_version_and_follow_the_option_rules(admin_client):
    suite = make_suite(cases=1)
    url = f"/admin/compare/suite/{suite.pk}/change/"
    response = admin_client.post(url, _admin_form(suite, options='{"quality": "ultra"}'))
    assert response.status_code == 200 and "&#x27;options.quality&#x27; must be one of" in texts(response)
    suite.refresh_from_db()
    assert suite.version == 1 and suite.cases.get().options == {}

    response = admin_client.post(url, _admin_form(suite, options='{"quality": "high"}', tags='["Poster"]'))
    assert response.status_code == 302
    suite.refresh_from_db()
    case = suite.cases.get()
    assert suite.version == 2 and case.options == {"quality": "high"} and case.tags == ["poster"]

    admin_client.post(url, {**_admin_form(suite), "description": "only the description"})
    suite.refresh_from_db()
    assert suite.version == 2 and suite.description == "only the description"


# --- the pages' markup ------------------------------------------------------------------------------


def test_suite_pages_have_no_inline_script_or_style(auth_client):
    from tests.test_security import Markup, csp

    suite = make_suite(cases=1)
    case = suite.cases.get()
    for url in ["/suites/", suite.get_absolute_url(), f"{suite.get_absolute_url()}?edit={case.pk}", "?edit=suite"]:
        response = auth_client.get(url if url.startswith("/") else suite.get_absolute_url() + url)
        assert response.status_code == 200, url
        policy = csp(response)
        assert "'unsafe-inline'" not in response["Content-Security-Policy"], url
        nonce = next(v for v in policy["script-src"] if v.startswith("'nonce-"))[len("'nonce-") : -1]
        markup = Markup()
        markup.feed(texts(response))
        assert markup.inline == [], url
        assert all(tag.get("nonce") == nonce for tag in markup.scripts), url
