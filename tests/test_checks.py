"""The automatic checks (compare/checks/): the text read back by OCR from simulator
images, with the simulator's planted misrenderings ([[swap:…]], [[drop:…]]); the
specification (size, aspect, format, transparency, count); the runner that stores
both on the generation; and what happens when the OCR engine cannot be loaded."""

import io
import sys
import time

import pytest
from PIL import Image as PILImage

from compare import images
from compare.checks import ocr, runner, spec, textcheck
from compare.models import Generation, Run
from compare.simulator.faults import strip_markers
from compare.simulator.render import compose, encode, misrender, seed_bytes
from compare.suites.models import SuiteRun
from tests.factories import make_run, submit_and_wait

POSTER = '春节促销海报，大字写着 "新春钜惠 全场 8 折"'
DASHBOARD = 'A SaaS dashboard whose header reads "Analytics Dashboard"'


def simulated(prompt: str, width: int = 1024, height: int = 1024, *, model: str = "gpt-image-2", **options):
    """The picture the simulator draws for this prompt and model (markers applied, as its views do)."""
    drawn = strip_markers(misrender(prompt, "openai", model))
    return compose(drawn, "simulated", seed_bytes(strip_markers(prompt), model, 0), width, height, **options)


def text_items(prompt: str, image: PILImage.Image, expectations=None) -> list[dict]:
    spans = [s.text for s in ocr.read(image)]
    return textcheck.check_text(textcheck.expected_strings(prompt, expectations), spans)


# --- the text check on simulator images -------------------------------------------------------------


def test_correct_chinese_including_the_rare_character_passes():
    [item] = text_items(POSTER, simulated(POSTER))
    assert item["expected"] == "新春钜惠 全场 8 折"
    assert item["passed"] and item["cer"] == 0.0
    assert "钜" in item["read"]
    assert item["diff"] == [["equal", "新春钜惠全场8折", "新春钜惠全场8折"]]


@pytest.mark.parametrize(("width", "height"), [(1536, 1024), (1024, 1536), (3840, 2160)])
def test_correct_english_passes_though_the_engine_splits_it_into_two_spans(width, height):
    # Portrait: the simulator shrinks the text rather than break "Dashboard" over two lines.
    # 4K: the detector's boxes "Analytics D" and "Dashboard" overlap; the D is read once.
    image = simulated(DASHBOARD, width, height)
    assert [s.text for s in ocr.read(image)][-2:] == ["Analytics", "Dashboard"]
    [item] = text_items(DASHBOARD, image)
    assert item["passed"] and item["cer"] == 0.0 and item["read"] == "Analytics Dashboard"


def test_overlapping_boxes_on_a_line_do_not_read_a_character_twice():
    line = [
        ocr.Span("Dashboard", (1803, 1145, 3338, 1417), 0.99),
        ocr.Span("Analytics D", (466, 1114, 1960, 1469), 0.94),
        ocr.Span("Below", (466, 1600, 900, 1800), 0.99),
    ]
    assert [s.text for s in ocr._reading_order(line)] == ["Analytics", "Dashboard", "Below"]
    apart = [ocr.Span("Add", (0, 0, 300, 100), 0.9), ocr.Span("Addition", (400, 0, 1200, 100), 0.9)]
    assert [s.text for s in ocr._reading_order(apart)] == ["Add", "Addition"]


def test_the_planted_swap_is_caught_with_the_wrong_character_in_the_diff():
    prompt = POSTER + " [[swap:钜>巨]]"
    [item] = text_items(prompt, simulated(prompt))
    assert item["expected"] == "新春钜惠 全场 8 折"  # the marker is not part of what was asked
    assert not item["passed"]
    assert ["replace", "钜", "巨"] in item["diff"]
    assert item["cer"] == 0.125  # one of the 8 characters of 新春钜惠全场8折
    assert "巨" in item["read"] and "钜" not in item["read"]


def test_two_planted_swaps_double_the_error_rate():
    prompt = POSTER + " [[swap:钜>巨]] [[swap:惠>慧]]"
    [item] = text_items(prompt, simulated(prompt))
    assert item["cer"] == 0.25  # 2 / 8
    assert item["diff"] == [["equal", "新春", "新春"], ["replace", "钜惠", "巨慧"], ["equal", "全场8折", "全场8折"]]


def test_the_planted_dropped_word_is_caught_as_one_deletion():
    prompt = DASHBOARD + " [[drop:Dashboard]]"
    [item] = text_items(prompt, simulated(prompt, 1536, 1024))
    assert not item["passed"]
    assert item["read"] == "Analytics"
    assert item["diff"] == [["equal", "analytics", "analytics"], ["delete", "dashboard", ""]]
    assert item["cer"] == 0.5  # 9 of the 18 characters of analyticsdashboard


@pytest.mark.parametrize(
    ("prompt", "width", "diff", "cer"),
    [
        (
            POSTER + " [[drop:全场]]",
            1024,
            [["equal", "新春钜惠", "新春钜惠"], ["delete", "全场", ""], ["equal", "8折", "8折"]],
            0.25,  # 2 / 8
        ),
        (
            DASHBOARD + " [[swap:Dashboard>Dashbaord]]",
            1536,
            # Two edits either way; the alignment keeping the "o" right (an "a" read early, then
            # missing) beats two wrong characters: 17 characters read right instead of 16.
            [
                ["equal", "analyticsdashb", "analyticsdashb"],
                ["insert", "", "a"],
                ["equal", "o", "o"],
                ["delete", "a", ""],
                ["equal", "rd", "rd"],
            ],
            0.111,  # 2 / 18
        ),
    ],
)
def test_a_missing_chinese_word_and_swapped_english_letters_are_caught(prompt, width, diff, cer):
    [item] = text_items(prompt, simulated(prompt, width, 1024))
    assert not item["passed"] and item["diff"] == diff and item["cer"] == cer


def test_a_marker_scoped_to_another_model_leaves_the_text_alone():
    prompt = POSTER + " [[swap@gemini-3-pro-image:钜>巨]]"
    [item] = text_items(prompt, simulated(prompt, model="gpt-image-2"))
    assert item["passed"]
    assert strip_markers(misrender(prompt, "gemini", "gemini-3-pro-image")).endswith('"新春巨惠 全场 8 折"')


def test_the_simulator_draws_text_legibly_at_4k_and_never_draws_its_markers():
    prompt = POSTER + " [[swap:钜>巨]] [[fault:rate_limitx0]]"
    spans = [s.text for s in ocr.read(simulated(prompt, 3840, 2160))]
    assert "".join(spans).replace("simulated", "") == "新春巨惠全场8折"


def test_suite_expectations_win_over_the_quoted_strings():
    image = simulated(DASHBOARD, 1536, 1024)
    [item] = text_items(DASHBOARD, image, expectations=["Dashboard"])
    assert item["expected"] == "Dashboard" and item["passed"]


# --- matching and normalising, by hand --------------------------------------------------------------


def test_normalising_folds_width_case_and_whitespace():
    assert textcheck.normalise("ＡＢＣ　１２３ Dash\u200bboard\n") == "abc123dashboard"
    assert textcheck.score("全场８折", ["全场 8 折"])["passed"]
    assert textcheck.score("ANALYTICS", ["analytics"])["passed"]


def test_error_rates_and_diffs_by_hand():
    extra = textcheck.score("新春钜惠", ["新春钜钜惠"])
    assert extra["cer"] == 0.25 and ["insert", "", "钜"] in extra["diff"]
    nothing = textcheck.score("abc", [])
    assert nothing == {"expected": "abc", "read": "", "cer": 1.0, "passed": False, "diff": [["delete", "abc", ""]]}
    # Other words on the same line do not count against the string; a threshold lets one error pass.
    assert textcheck.score("Sale", ["Big Sale 50%"])["passed"]
    assert textcheck.score("新春钜惠", ["新春巨惠"], max_cer=0.25)["passed"]
    assert not textcheck.score("新春钜惠", ["新春巨惠"], max_cer=0.2)["passed"]


def test_expected_strings_come_from_every_quote_style_without_markers():
    prompt = 'A [[drop:x]] "one" “two” 「三」 『四』 «cinq» " " [[fault:timeout]] "one"'
    assert textcheck.expected_strings(prompt) == ["one", "two", "三", "四", "cinq"]
    assert textcheck.expected_strings(prompt, ["  ", "Given"]) == ["Given"]
    assert textcheck.expected_strings("no quotes here") == []


# --- the specification -----------------------------------------------------------------------------


def image_of(size=(1024, 1024), mode="RGB", fmt="PNG", color=(200, 30, 30, 255)) -> bytes:
    out = io.BytesIO()
    PILImage.new(mode, size, color[: len(mode)]).save(out, fmt)
    return out.getvalue()


def checked(
    user, images_data: list[bytes], sent: dict, prompt="a plain poster", options=None, model=("gpt-image-2",) * 3
) -> Generation:
    """A succeeded generation with these images and wire parameters, checked by the runner."""
    run = make_run(user, prompt, models=[model], options=options)
    gen = run.generations.get()
    Generation.objects.filter(pk=gen.pk).update(params_sent=sent)
    for index, data in enumerate(images_data):
        gen.images.create(index=index, **images.store(data))
    runner.check_generation(str(gen.pk))
    return Generation.objects.get(pk=gen.pk)


def spec_items(gen: Generation) -> dict[str, dict]:
    items = {i["name"]: i for i in gen.checks["spec"]}
    for image in gen.checks["images"]:
        items.update({i["name"]: i for i in image["spec"]})
    return items


OPENAI_SENT = {"model": "gpt-image-2", "n": 1, "size": "1536x1024", "output_format": "png", "background": "auto"}


@pytest.mark.django_db
def test_delivered_as_asked_passes_with_no_text_check_when_nothing_is_quoted(user):
    gen = checked(user, [image_of((1536, 1024))], OPENAI_SENT)
    assert gen.check_status == Generation.CheckStatus.PASSED
    items = spec_items(gen)
    assert items["size"] == {"name": "size", "expected": "1536×1024", "actual": "1536×1024", "passed": True}
    assert items["aspect"]["expected"] == "3:2" and items["aspect"]["passed"]
    assert items["format"]["passed"] and items["count"]["passed"]
    assert gen.checks["engine"] == "" and gen.checks["images"][0]["text"] == []


@pytest.mark.django_db
def test_wrong_size_fails_size_and_aspect(user):
    gen = checked(user, [image_of((1024, 1024))], OPENAI_SENT)
    assert gen.check_status == Generation.CheckStatus.FAILED
    items = spec_items(gen)
    assert items["size"]["actual"] == "1024×1024" and not items["size"]["passed"]
    assert not items["aspect"]["passed"]


@pytest.mark.django_db
def test_wrong_format_fails(user):
    gen = checked(user, [image_of((1536, 1024), fmt="JPEG")], {**OPENAI_SENT, "output_format": "webp"})
    items = spec_items(gen)
    assert items["format"] == {"name": "format", "expected": "webp", "actual": "jpeg", "passed": False}
    assert gen.check_status == Generation.CheckStatus.FAILED


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("mode", "color", "actual", "passed"),
    [
        ("RGB", (255, 255, 255, 255), "no alpha channel", False),
        ("RGBA", (255, 255, 255, 255), "alpha channel, nothing transparent", False),
        ("RGBA", (255, 255, 255, 0), "transparent pixels", True),
    ],
)
def test_transparency_when_a_transparent_background_was_asked(user, mode, color, actual, passed):
    sent = {**OPENAI_SENT, "background": "transparent"}
    gen = checked(user, [image_of((1536, 1024), mode=mode, color=color)], sent)
    assert spec_items(gen)["transparency"] == {
        "name": "transparency",
        "expected": "transparent pixels",
        "actual": actual,
        "passed": passed,
    }


@pytest.mark.django_db
def test_the_simulators_transparent_card_passes(user):
    picture = simulated("a sticker", 1536, 1024, transparent=True)
    gen = checked(user, [encode(picture, "png")], {**OPENAI_SENT, "background": "transparent"})
    assert spec_items(gen)["transparency"]["passed"] and gen.check_status == Generation.CheckStatus.PASSED


@pytest.mark.django_db
def test_fewer_images_than_asked_fails_the_count(user):
    gen = checked(user, [image_of((1536, 1024))], {**OPENAI_SENT, "n": 2})
    assert spec_items(gen)["count"] == {"name": "count", "expected": "2", "actual": "1", "passed": False}
    assert gen.check_status == Generation.CheckStatus.FAILED


@pytest.mark.django_db
def test_without_recorded_parameters_the_options_say_what_was_asked(user):
    nano, options = ("gemini-3-pro-image",) * 3, {"aspect_ratio": "16:9", "resolution": "2K"}
    right = checked(user, [image_of((2752, 1536))], {}, options=options, model=nano)
    assert spec_items(right)["size"]["expected"] == "2752×1536" and right.check_status == "passed"
    wrong = checked(user, [image_of((1376, 768))], {}, options=options, model=nano)
    assert not spec_items(wrong)["size"]["passed"] and spec_items(wrong)["aspect"]["passed"]


def test_gemini_sizes_follow_its_table():
    asked = spec.asked_for({"generationConfig": {"imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"}}}, {})
    assert asked.size == (2752, 1536) and asked.aspect == ("16:9", 16 / 9)
    assert spec.asked_for({"requests": 3}, {}).count == 3
    auto = spec.asked_for({"size": "auto", "n": 1}, {})
    assert auto.size is None and auto.aspect is None
    assert [i["name"] for i in spec.check_image(auto, PILImage.new("RGB", (640, 480)), "png")] == []


def test_characters_outside_the_engines_set_are_named():
    characters = ocr.charset()
    assert ocr.unreadable("新春钜惠 全场８折 Analytics, 東京の夜", characters) == []
    assert ocr.unreadable("서울의 밤", characters) == ["서", "울", "의", "밤"]
    assert ocr.unreadable("さくら 好評", characters) == ["さ", "く", "ら", "評"]


# --- the runner --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_runner_stores_text_and_spec_per_image(user):
    prompt = POSTER + " [[swap:钜>巨]]"
    gen = checked(user, [encode(simulated(prompt, 1536, 1024), "png")], OPENAI_SENT, prompt=prompt)
    assert gen.check_status == Generation.CheckStatus.FAILED
    assert gen.checks["engine"].startswith("rapidocr-onnxruntime ")
    assert gen.checks["max_cer"] == 0.0
    [image] = gen.checks["images"]
    [item] = image["text"]
    assert ["replace", "钜", "巨"] in item["diff"] and item["cer"] == 0.125
    assert all(i["passed"] for i in image["spec"])
    assert gen.checks["text_checked"] is True and gen.checks["text_failed"] is True


@pytest.mark.django_db
def test_the_runner_uses_the_suite_cases_expectations(user):
    gen = checked(user, [encode(simulated(DASHBOARD, 1536, 1024), "png")], OPENAI_SENT, prompt="a dashboard")
    run = Run.objects.get(pk=gen.run_id)
    suite_run = SuiteRun.objects.create(
        suite_name="S", author=user, cases=[{"prompt": "a dashboard", "expectations": ["Analytics Dashboard"]}]
    )
    Run.objects.filter(pk=run.pk).update(suite_run=suite_run, suite_case=0, suite_sample=0)
    assert runner.check_generation(str(gen.pk)) == Generation.CheckStatus.PASSED
    checks = Generation.objects.get(pk=gen.pk).checks
    [item] = checks["images"][0]["text"]
    assert item["expected"] == "Analytics Dashboard" and item["passed"]
    assert checks["text_checked"] is True and checks["text_failed"] is False


@pytest.mark.django_db
def test_a_string_the_engine_cannot_read_is_left_out_and_named(user):
    prompt = 'A poster "新春钜惠 全场 8 折" with the subtitle "서울의 밤"'
    gen = checked(user, [encode(simulated(prompt, 1536, 1024), "png")], OPENAI_SENT, prompt=prompt)
    assert [i["expected"] for i in gen.checks["images"][0]["text"]] == ["新春钜惠 全场 8 折"]
    assert gen.checks["images"][0]["text"][0]["passed"]
    assert gen.checks["text_unavailable"] == (
        "Not checked: the OCR engine cannot read the characters in brackets of “서울의 밤” (서 울 의 밤)."
    )
    assert gen.check_status == Generation.CheckStatus.UNAVAILABLE  # nothing failed, something unchecked


@pytest.mark.django_db
def test_a_generation_that_is_not_succeeded_is_left_alone(user):
    run = make_run(user, POSTER, status="failed", models=[("gpt-image-2", "GPT Image 2", "gpt-image-2")])
    gen = run.generations.get()
    assert runner.check_generation(str(gen.pk)) == ""
    gen.refresh_from_db()
    assert gen.check_status == "" and gen.checks == {}


@pytest.mark.django_db
def test_a_crash_in_the_check_becomes_unavailable_with_the_reason(user, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr(spec, "check_image", broken)
    gen = checked(user, [image_of((1536, 1024))], OPENAI_SENT)
    assert gen.check_status == Generation.CheckStatus.UNAVAILABLE
    assert gen.checks["text_unavailable"] == "The checks could not run (ValueError: boom)."


@pytest.fixture
def ocr_missing(monkeypatch):
    """The OCR package cannot be imported (None in sys.modules makes `import` fail)."""
    ocr.reset()
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    yield
    ocr.reset()


@pytest.mark.django_db
def test_without_the_ocr_engine_the_text_check_is_unavailable_and_the_spec_still_checked(user, ocr_missing):
    available, _name, reason = ocr.engine_status()
    assert not available
    assert reason.startswith(
        "The text check is unavailable: the OCR engine could not be loaded (rapidocr-onnxruntime could not be imported"
    )
    gen = checked(user, [image_of((1536, 1024))], OPENAI_SENT, prompt=POSTER)
    assert gen.check_status == Generation.CheckStatus.UNAVAILABLE
    assert gen.checks["text_unavailable"] == reason and gen.checks["engine"] == ""
    assert spec_items(gen)["size"]["passed"]
    wrong = checked(user, [image_of((1024, 1024))], OPENAI_SENT, prompt=POSTER)
    assert wrong.check_status == Generation.CheckStatus.FAILED  # a spec failure is still a failure


# --- end to end: a real run through the simulator ---------------------------------------------------


def wait_for_checks(run: Run, timeout: float = 60.0) -> list[Generation]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gens = sorted(Generation.objects.filter(run=run), key=lambda g: g.position)
        if all(g.check_status not in ("", Generation.CheckStatus.PENDING) for g in gens):
            return gens
        time.sleep(0.1)
    raise AssertionError(f"checks still pending: {[(g.model_key, g.check_status) for g in gens]}")


@pytest.mark.django_db(transaction=True)
def test_a_run_catches_the_misrendering_planted_for_one_model(simulator, auth_client):
    run, _gens = submit_and_wait(auth_client, POSTER + " [[swap@gpt-image-2:钜>巨]]")
    gpt, nano = wait_for_checks(run)
    assert (gpt.model_key, nano.model_key) == ("gpt-image-2", "gemini-3-pro-image")
    assert nano.check_status == Generation.CheckStatus.PASSED
    assert nano.checks["images"][0]["text"][0]["read"].startswith("新春钜惠")
    assert gpt.check_status == Generation.CheckStatus.FAILED
    [item] = gpt.checks["images"][0]["text"]
    assert item["expected"] == "新春钜惠 全场 8 折" and ["replace", "钜", "巨"] in item["diff"]
    # The marker itself was never drawn.
    stored = gpt.final_images()[0]
    with PILImage.open(io.BytesIO(images.open_bytes(stored.file))) as picture:
        read = "".join(s.text for s in ocr.read(picture))
    assert "swap" not in read and "[" not in read
