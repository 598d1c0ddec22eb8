"""The compare stage in a real browser (Debian's chromium driven by Playwright): one scale
and one top edge for both sides, zoom and pan kept in step, the swipe divider, the
difference view, the full-screen viewer and the strip of a side's images. The tests
measure positions, transforms and pixels, not only the DOM."""

import re

import pytest
from playwright.sync_api import expect

from compare.models import Generation, Run
from tests.e2e.test_browser import log_in
from tests.factories import BOTH, GPT, MINI, NANO, image_bytes, make_run, succeed, wait_for_generations

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LAPTOP = {"width": 1440, "height": 900}


@pytest.fixture
def open_page(open_page):
    """The shared open_page (tests/e2e/conftest.py: console errors fail the test), at laptop size unless told."""
    return lambda **options: open_page(**{"viewport": LAPTOP, **options})


@pytest.fixture
def page(open_page):
    return open_page()


def simulated_run(client, **fields) -> Run:
    """A 16:9 2K run of both flagships through the simulator: GPT Image 2 delivers
    2720×1536, Nano Banana Pro 2752×1536 — two pixel sizes, as with the real models."""
    data = {"prompt": 'A poster that says "Fresh Bread"', "models": BOTH, "aspect_ratio": "16:9", "resolution": "2K"}
    response = client.post("/", {**data, **fields})
    assert response.status_code == 302, response.content.decode()[:500]
    run = Run.objects.latest("created_at")
    wait_for_generations(run)
    return run


def open_run(page, simulator, run: Run, query: str = ""):
    log_in(page, simulator)
    page.goto(simulator.url + run.get_absolute_url() + query)
    expect(page.locator("[data-stage-tools]")).to_be_visible()
    page.wait_for_function("document.querySelectorAll('.stage-frame figure.is-selected img').length >= 2")
    page.wait_for_function(
        "[...document.querySelectorAll('.stage-frame figure.is-selected img')].every(i => i.complete && i.naturalWidth)"
    )


def frame_transforms(page) -> list[str]:
    return page.eval_on_selector_all(".panes .stage-frame", "frames => frames.map(f => getComputedStyle(f).transform)")


def image_boxes(page) -> list[dict]:
    return page.eval_on_selector_all(
        ".panes .stage-frame figure.is-selected img",
        "imgs => imgs.map(i => { const r = i.getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, height: r.height}; })",
    )


def zoom_level(page) -> float:
    return float(page.locator("[data-stage-tools] [data-zoom-level]").inner_text().replace("%", "").strip())


def test_both_sides_at_one_scale_top_aligned_with_the_verdict_in_view(page, simulator, auth_client):
    run = simulated_run(auth_client)
    open_run(page, simulator, run)
    gpt, nano = sorted(run.generations.all(), key=lambda g: g.position)
    assert (gpt.images.get().width, nano.images.get().width) == (2720, 2752)

    a, b = image_boxes(page)
    assert abs(a["y"] - b["y"]) <= 1  # top edges on one line
    # One scale: screen size ∝ pixel size, so the wider image is wider on screen too.
    assert a["width"] / 2720 == pytest.approx(b["width"] / 2752, rel=1e-3)
    assert a["height"] == pytest.approx(b["height"], abs=0.5)
    for box in (a, b):  # both images whole in the window
        assert box["y"] >= 0 and box["y"] + box["height"] <= LAPTOP["height"]
        assert box["x"] >= 0 and box["x"] + box["width"] <= LAPTOP["width"]
    verdict = page.locator("#votes").bounding_box()
    assert verdict["y"] >= a["y"] + a["height"] - 1  # below the images, not over them
    assert verdict["y"] + verdict["height"] <= LAPTOP["height"]
    expect(page.get_by_role("button", name=re.compile("^Left better"))).to_be_in_viewport()
    # Gemini's text reply sits below the stage, in a drawer, not under one image.
    expect(page.locator(".model-output").first).to_contain_text("Text reply")
    assert page.locator(".stage-viewport .model-text").count() == 0
    expect(page.locator("[data-stage-note]")).to_contain_text("GPT Image 2 2720×1536")


def test_the_stage_turns_on_as_the_images_arrive_without_a_reload(page, simulator, auth_client, settings):
    settings.COMPARE_SIMULATOR_LATENCY = 0.5  # long enough to open the page before the images exist
    data = {"prompt": "a live stage", "models": BOTH, "aspect_ratio": "1:1", "resolution": "1K"}
    assert auth_client.post("/", data).status_code == 302
    run = Run.objects.get()
    log_in(page, simulator)
    page.goto(simulator.url + run.get_absolute_url())
    page.evaluate("document.body.dataset.sameDocument = 'yes'")
    expect(page.locator("[data-stage-tools]")).to_be_hidden()  # nothing to compare yet
    expect(page.locator(".panes .stage-frame figure.is-selected img")).to_have_count(2, timeout=30_000)
    expect(page.locator("[data-stage-tools]")).to_be_visible()
    page.wait_for_function(
        "[...document.querySelectorAll('.stage-frame figure.is-selected img')].every(i => i.complete && i.naturalWidth)"
    )
    page.wait_for_function(
        "(() => { const t = [...document.querySelectorAll('.panes .stage-frame')]"
        ".map(f => getComputedStyle(f).transform); return t[0] === t[1]; })()"
    )
    a, b = image_boxes(page)
    assert abs(a["y"] - b["y"]) <= 1 and a["width"] == pytest.approx(b["width"], abs=0.5)
    assert page.evaluate("document.body.dataset.sameDocument") == "yes"


def test_synced_zoom_keeps_both_transforms_equal_after_wheel_drag_and_keys(page, simulator, auth_client):
    open_run(page, simulator, simulated_run(auth_client))
    fitted = zoom_level(page)
    assert fitted < 100  # 2752 px never fit a laptop at 100 %

    left = page.locator(".panes [data-stage-viewport]").nth(0).bounding_box()
    page.mouse.move(left["x"] + left["width"] * 0.3, left["y"] + left["height"] * 0.4)
    for _ in range(4):
        page.mouse.wheel(0, -120)
    page.wait_for_function(f"parseFloat(document.querySelector('[data-zoom-level]').textContent) > {fitted}")
    after_wheel = frame_transforms(page)
    assert after_wheel[0] == after_wheel[1] and after_wheel[0] != "none"

    # Drag on the right side: the left side follows.
    right = page.locator(".panes [data-stage-viewport]").nth(1).bounding_box()
    x, y = right["x"] + right["width"] / 2, right["y"] + right["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 80, y - 40, steps=6)
    page.mouse.up()
    page.wait_for_function(
        "(before) => getComputedStyle(document.querySelector('.panes .stage-frame')).transform !== before",
        arg=after_wheel[0],
    )
    after_drag = frame_transforms(page)
    assert after_drag[0] == after_drag[1] != after_wheel[0]
    a, b = image_boxes(page)
    assert a["y"] == pytest.approx(b["y"], abs=1)
    # The drag moved both images by the same amount on screen (80 px left, 40 px up).
    assert a["width"] / 2720 == pytest.approx(b["width"] / 2752, rel=1e-3)

    page.keyboard.press("p")  # 1:1 pixels
    expect(page.locator("[data-stage-tools] [data-zoom-level]")).to_have_text("100 %")
    a, b = image_boxes(page)
    assert (round(a["width"]), round(b["width"])) == (2720, 2752)
    assert frame_transforms(page)[0] == frame_transforms(page)[1]
    page.keyboard.press("-")
    expect(page.locator("[data-stage-tools] [data-zoom-level]")).to_have_text("80 %")
    page.get_by_role("button", name=re.compile("^Fit")).click()
    assert zoom_level(page) == fitted
    a, _ = image_boxes(page)
    top = page.locator(".panes [data-stage-viewport]").nth(0).bounding_box()["y"]
    assert a["y"] == pytest.approx(top, abs=1)  # fitted again: top edge on the viewport's


def test_swipe_divider_follows_the_mouse_and_the_keyboard(page, simulator, auth_client):
    open_run(page, simulator, simulated_run(auth_client))
    page.get_by_role("button", name=re.compile("^Swipe")).click()
    overlay = page.locator("[data-stage-overlay]")
    expect(overlay).to_be_visible()
    # The two sizes are normalised to one frame, and the page says so.
    expect(page.locator("[data-stage-note]")).to_have_text(
        "Nano Banana Pro scaled from 2752×1536 to 2720×1536 to overlay."
    )
    box = overlay.bounding_box()
    handle = page.get_by_role("slider", name="Divider between the two images")
    start = handle.bounding_box()
    assert start["x"] + start["width"] / 2 == pytest.approx(box["x"] + box["width"] / 2, abs=2)

    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    target = box["x"] + box["width"] * 0.25
    page.mouse.move(target, start["y"] + start["height"] / 2, steps=8)
    page.mouse.up()
    moved = handle.bounding_box()
    assert moved["x"] + moved["width"] / 2 == pytest.approx(target, abs=2)
    clip = page.eval_on_selector("[data-stage-overlay] .stage-layer", "l => getComputedStyle(l).clipPath")
    assert clip == f"inset(0px 0px 0px {round(box['width'] * 0.25)}px)"
    expect(handle).to_have_attribute("aria-valuenow", "25")

    handle.focus()
    page.keyboard.press("Shift+ArrowRight")
    expect(handle).to_have_attribute("aria-valuenow", "35")
    assert handle.bounding_box()["x"] > moved["x"] + box["width"] * 0.09

    # The mode is remembered for this user's next page.
    page.reload()
    expect(page.get_by_role("button", name=re.compile("^Swipe"))).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("slider", name="Divider between the two images")).to_have_attribute("aria-valuenow", "35")


def test_difference_of_two_identical_images_is_black(page, simulator, auth_client, user):
    same = image_bytes((200, 40, 90), (300, 200))
    run = make_run(user, prompt="identical twins", status="queued")
    for gen in run.generations.all():
        succeed(gen, same)
    other = make_run(user, prompt="not twins", status="queued")
    gpt, nano = sorted(other.generations.all(), key=lambda g: g.position)
    succeed(gpt, image_bytes((200, 40, 90), (300, 200)))
    succeed(nano, image_bytes((200, 40, 80), (300, 200)))

    open_run(page, simulator, run)
    page.keyboard.press("d")
    expect(page.locator("[data-stage-note]")).to_contain_text("identical, pixel for pixel")
    pixels = page.evaluate(
        """() => {
            const canvas = document.querySelector("[data-stage-overlay] canvas");
            const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            let max = 0;
            for (let i = 0; i < data.length; i += 4) max = Math.max(max, data[i], data[i + 1], data[i + 2]);
            return {w: canvas.width, h: canvas.height, max, alpha: data[3]};
        }"""
    )
    assert pixels == {"w": 300, "h": 200, "max": 0, "alpha": 255}
    assert page.locator("[data-stage-overlay] canvas").is_visible()

    # Two images that differ in blue by 10: the difference shows exactly that.
    page.goto(simulator.url + other.get_absolute_url())
    expect(page.get_by_role("button", name=re.compile("^Difference"))).to_have_attribute("aria-pressed", "true")
    expect(page.locator("[data-stage-note]")).to_contain_text("100.0 % of pixels differ (largest difference 10 of 255)")
    sample = page.evaluate(
        """() => Array.from(document.querySelector("[data-stage-overlay] canvas")
              .getContext("2d").getImageData(150, 100, 1, 1).data)"""
    )
    assert sample == [0, 0, 10, 255]


def test_the_full_screen_viewer_opens_flips_with_arrows_and_closes_with_escape(page, simulator, auth_client):
    run = simulated_run(auth_client)
    open_run(page, simulator, run)
    page.evaluate("document.body.dataset.sameDocument = 'yes'")
    gpt, nano = sorted(run.generations.all(), key=lambda g: g.position)

    page.locator(".panes figure.is-selected img").first.click()
    viewer = page.locator("dialog[data-viewer]")
    expect(viewer).to_be_visible()
    box = viewer.bounding_box()
    assert box["width"] == LAPTOP["width"] and box["height"] == LAPTOP["height"]
    expect(viewer.locator("[data-viewer-name]")).to_have_text("GPT Image 2")
    expect(viewer.get_by_role("link", name="Original file")).to_have_attribute("href", gpt.images.get().url)
    shown = viewer.locator("[data-viewer-viewport] img")
    expect(shown).to_have_attribute("src", gpt.images.get().url)
    img = shown.bounding_box()
    # Fitted whole into the window, its aspect kept.
    assert img["width"] <= LAPTOP["width"] + 0.5 and img["height"] <= box["height"]
    assert img["width"] / 2720 == pytest.approx(img["height"] / 1536, rel=1e-2)

    page.keyboard.press("ArrowRight")
    expect(viewer.locator("[data-viewer-name]")).to_have_text("Nano Banana Pro")
    expect(shown).to_have_attribute("src", nano.images.get().url)
    page.keyboard.press("1")  # 1:1 pixels in the viewer, not a vote
    expect(viewer.locator("[data-zoom-level]")).to_have_text("100 %")
    assert round(shown.bounding_box()["width"]) == 2752
    page.keyboard.press("ArrowLeft")  # flipping keeps the zoom: the same spot of the other side
    expect(shown).to_have_attribute("src", gpt.images.get().url)
    expect(viewer.locator("[data-zoom-level]")).to_have_text("100 %")

    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    assert run.votes.count() == 0
    assert page.evaluate("document.body.dataset.sameDocument") == "yes"  # a dialog, not a new page
    # Focus left the closed viewer, so the page's own keys work again (v opens it anew).
    page.wait_for_function("() => !document.querySelector('dialog[data-viewer]').contains(document.activeElement)")
    page.keyboard.press("v")
    expect(viewer).to_be_visible()
    viewer.get_by_role("button", name=re.compile("^Close")).click()
    expect(viewer).to_be_hidden()


def test_with_two_images_per_side_the_strip_picks_the_compared_image(page, simulator, auth_client):
    run = simulated_run(auth_client, n="2")
    open_run(page, simulator, run)
    gpt = sorted(run.generations.all(), key=lambda g: g.position)[0]
    first, second = gpt.images.filter(is_partial=False).order_by("index")
    left = page.locator("article.pane").nth(0)
    compared = left.locator(".stage-frame figure.is-selected img")
    expect(compared).to_have_attribute("src", first.url)
    before = compared.bounding_box()
    strip = left.get_by_role("list", name=re.compile("^Images of"))
    expect(strip.get_by_role("link")).to_have_count(2)

    strip.get_by_role("link").nth(1).click()
    expect(compared).to_have_attribute("src", second.url)
    expect(strip.get_by_role("link").nth(1)).to_have_attribute("aria-current", "true")
    after = compared.bounding_box()
    assert after == before  # the other image takes the same place: nothing jumps
    expect(left.locator("[data-stage-caption]")).to_contain_text("Image 2")
    # The overlay modes compare the selected image too.
    page.keyboard.press("o")
    expect(page.locator("[data-stage-overlay] img").first).to_have_attribute("src", second.url)
    assert page.url.endswith(run.get_absolute_url())


def test_judge_queue_and_any_two_images_use_the_same_stage(page, simulator, auth_client, user):
    run = simulated_run(auth_client)
    gpt, nano = sorted(run.generations.all(), key=lambda g: g.position)
    a, b = gpt.images.get(), nano.images.get()
    open_run(page, simulator, run, "?arena=1")
    expect(page.locator("article.pane h2").first).to_have_text(re.compile("^Side [AB]$"))
    page.keyboard.press("w")
    expect(page.locator("[data-stage-overlay]")).to_be_visible()
    expect(page.get_by_role("slider", name="Divider between the two images")).to_be_visible()
    assert "2752" not in page.locator("[data-stage-tools]").inner_text()  # blind: no pixel size gives a side away

    page.goto(simulator.url + f"/compare/?a={a.sha256}")
    expect(page.get_by_role("heading", name="Pick B")).to_be_visible()
    page.locator(".pick-grid a").filter(has=page.locator(f"img[src='{b.thumbnail_url}']")).click()
    expect(page).to_have_url(re.compile(rf"\?a={a.sha256}&b={b.sha256}$"))
    expect(page.locator("[data-stage-overlay]")).to_be_visible()  # the remembered mode: swipe
    page.keyboard.press("s")
    boxes = image_boxes(page)
    assert len(boxes) == 2 and abs(boxes[0]["y"] - boxes[1]["y"]) <= 1
    assert page.get_by_role("link", name="swap A and B").get_attribute("href") == f"?a={b.sha256}&b={a.sha256}"


def test_a_bad_image_id_in_the_pair_view_says_so(auth_client, user):
    response = auth_client.get("/compare/?a=nothex&b=" + "0" * 64)
    assert response.status_code == 404
    page = response.content.decode()
    assert "There is no finished image “nothex” to show as A" in page
    assert "Pick A" in page


def test_the_pair_view_leaves_out_blind_runs_the_viewer_has_not_judged(auth_client, user):
    blind = make_run(user, prompt="blind one", blind=True, status="queued")
    open_ = make_run(user, prompt="open one", status="queued")
    colours = iter(["red", "green", "blue", "olive"])
    for gen in [*blind.generations.all(), *open_.generations.all()]:
        succeed(gen, image_bytes(next(colours), (64, 48)))
    hidden = blind.generations.order_by("position")[0].images.get()
    shown = [gen.images.get() for gen in open_.generations.order_by("position")]
    response = auth_client.get(f"/compare/?a={hidden.sha256}")
    page = response.content.decode()
    assert response.status_code == 404
    assert "Image A belongs to a blind comparison you have not judged yet." in page
    assert hidden.thumbnail_url not in page and "blind one" not in page
    assert all(img.thumbnail_url in page for img in shown)
    both = auth_client.get(f"/compare/?a={shown[0].sha256}&b={shown[1].sha256}").content.decode()
    assert "A · GPT Image 2" in both and "B · Nano Banana Pro" in both and shown[1].url in both


def test_a_failed_side_keeps_the_stage_for_the_other(page, simulator, user):
    run = make_run(user, prompt="one fails", status=["succeeded", "failed"])
    succeed(Generation.objects.get(run=run, position=0), image_bytes("navy", (320, 240)))
    log_in(page, simulator)
    page.goto(simulator.url + run.get_absolute_url())
    expect(page.locator("[data-stage-tools]")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Swipe"))).to_be_disabled()
    img = page.locator(".panes figure.is-selected img")
    expect(img).to_be_visible()
    assert round(img.bounding_box()["width"]) == 320  # small images are never upscaled to fit
    assert zoom_level(page) == 100


def test_the_stage_in_dark_mode_and_on_a_phone_has_no_script_errors(open_page, simulator, auth_client):
    run = simulated_run(auth_client)
    for options in (
        {"color_scheme": "dark"},
        {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
    ):
        page = open_page(**options)
        open_run(page, simulator, run)
        a, b = image_boxes(page)
        assert a["width"] / 2720 == pytest.approx(b["width"] / 2752, rel=1e-3)
        surround = page.eval_on_selector(".panes [data-stage-viewport]", "v => getComputedStyle(v).backgroundColor")
        r, g, bl = (int(v) for v in re.findall(r"\d+", surround)[:3])
        assert r == g == bl  # a neutral grey, never tinted


def test_with_three_sides_the_overlay_picks_which_two(page, simulator, user):
    run = make_run(user, prompt="three ways", status="queued", models=(GPT, NANO, MINI))
    colours = {}
    for gen, colour in zip(run.generations.order_by("position"), ("red", "green", "blue"), strict=True):
        colours[gen.model_label] = succeed(gen, image_bytes(colour, (400, 300))).images.get().url
    open_run(page, simulator, run)
    expect(page.locator(".panes .stage-frame")).to_have_count(3)
    assert len(set(frame_transforms(page))) == 1  # one transform for all three sides
    page.keyboard.press("w")
    pick_b = page.get_by_label("with")
    expect(pick_b).to_be_visible()
    top = page.locator("[data-stage-overlay] .stage-layer img").first
    expect(top).to_have_attribute("src", colours["Nano Banana Pro"])
    pick_b.select_option(label="GPT Image 1 mini")
    expect(top).to_have_attribute("src", colours["GPT Image 1 mini"])
    expect(page.locator("[data-stage-overlay] .stage-label.b")).to_have_text("GPT Image 1 mini")

    # The loupe magnifies the same spot on every side.
    page.keyboard.press("s")
    page.keyboard.press("l")
    first = page.locator(".panes [data-stage-viewport]").first.bounding_box()
    page.mouse.move(first["x"] + 120, first["y"] + 90)
    loupes = page.locator(".panes .stage-loupe")
    expect(loupes).to_have_count(3)
    offsets = page.eval_on_selector_all(
        ".panes .stage-loupe",
        """ls => ls.map(l => { const r = l.getBoundingClientRect(), v = l.parentNode.getBoundingClientRect();
                          return [Math.round(r.x - v.x), Math.round(r.y - v.y)]; })""",
    )
    assert offsets == [[120 - 90, 90 - 90]] * 3
