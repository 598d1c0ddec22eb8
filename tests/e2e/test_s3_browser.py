"""Images on S3-compatible storage in a real browser: the page's image addresses answer with
presigned URLs of the local S3 server (tests/test_s3.py starts it), and the browser shows
them under the strict CSP (compare/settings.py adds the bucket's origin to img-src)."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.test_browser import log_in
from tests.e2e.test_stage import LAPTOP
from tests.factories import image_bytes, make_run, succeed
from tests.test_s3 import keys, s3, s3_endpoint  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def bucket_page(open_page, s3, s3_endpoint, settings):  # noqa: F811 (fixtures)
    """A laptop-sized page, with the CSP a deployment on this bucket gets."""
    settings.SECURE_CSP = {**settings.SECURE_CSP, "img-src": [*settings.SECURE_CSP["img-src"], s3_endpoint]}
    return open_page(viewport=LAPTOP)


def test_run_page_images_come_from_the_bucket(bucket_page, simulator, s3, s3_endpoint, user):  # noqa: F811
    run = make_run(user, prompt="two posters", status="queued")
    for gen, colour in zip(run.generations.order_by("position"), [(200, 40, 90), (20, 140, 90)], strict=True):
        succeed(gen, image_bytes(colour, (300, 200)))
    assert len([k for k in keys(s3) if k.startswith("images/")]) == 2

    page = bucket_page
    fetched: list[str] = []
    page.on("response", lambda r: fetched.append(r.url) if r.url.startswith(s3_endpoint) else None)
    log_in(page, simulator)
    page.goto(simulator.url + run.get_absolute_url())
    page.wait_for_function("document.querySelectorAll('.stage-frame figure.is-selected img').length >= 2")
    page.wait_for_function(
        "[...document.querySelectorAll('.stage-frame figure.is-selected img')].every(i => i.complete && i.naturalWidth)"
    )
    sizes = page.eval_on_selector_all(
        ".stage-frame figure.is-selected img", "imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])"
    )
    assert sizes == [[300, 200], [300, 200]]
    assert any("/images/" in url and "X-Amz-Signature=" in url for url in fetched)


def test_the_difference_view_reads_images_from_the_bucket(bucket_page, simulator, s3, user):  # noqa: F811
    run = make_run(user, prompt="nearly twins", status="queued")
    gpt, nano = run.generations.order_by("position")
    succeed(gpt, image_bytes((200, 40, 90), (300, 200)))
    succeed(nano, image_bytes((200, 40, 80), (300, 200)))
    page = bucket_page
    log_in(page, simulator)
    page.goto(simulator.url + run.get_absolute_url())
    page.wait_for_function(
        "[...document.querySelectorAll('.stage-frame figure.is-selected img')].every(i => i.complete && i.naturalWidth)"
    )
    page.keyboard.press("d")
    expect(page.get_by_role("button", name=re.compile("^Difference"))).to_have_attribute("aria-pressed", "true")
    expect(page.locator("[data-stage-note]")).to_contain_text("100.0 % of pixels differ (largest difference 10 of 255)")
