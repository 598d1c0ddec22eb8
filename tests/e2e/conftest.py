"""Fixtures of the page-wide browser tests (test_layout.py, test_a11y.py): one chromium
per module, pages opened logged in or out, and the site empty or filled (tests/e2e/site.py).
test_stage.py and test_judging_browser.py share `browser`; test_browser.py keeps its own."""

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.site import PHONE, Site, fill, nav_pages
from tests.e2e.test_browser import CHROMIUM
from tests.factories import password_for


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One chromium for the module (each page gets a fresh context)."""
    # Playwright's sync API runs an event loop in this thread; the ORM calls here are plain
    # synchronous test code.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as pw:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser, simulator):
    """open_page(user=None, **context options) → a page at phone size unless told, logged
    in as `user` when given, whose console errors (a CSP violation, a script error) fail the test."""
    contexts, errors = [], []

    def open_(user: User | None = None, **options) -> Page:
        context = browser.new_context(**{"viewport": PHONE, **options})
        contexts.append(context)
        # The admin's pages have no icon link, so the browser asks for /favicon.ico (a 404).
        context.route("**/favicon.ico", lambda route: route.fulfill(status=204))
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        if user is not None:
            page.goto(simulator.url + "/login/")
            page.get_by_label("Username").fill(user.get_username())
            page.get_by_label("Password").fill(password_for(user.get_username()))
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("button", name="Log out")).to_be_attached()
        return page

    yield open_
    for context in contexts:
        context.close()
    # A request that htmx itself aborted (hx-sync replaced it) is expected, not an error.
    expected = ("htmx:sendAbort", "htmx:afterRequest")
    assert [e for e in errors if not e.startswith(expected)] == [], errors


@pytest.fixture
def staff(user) -> User:
    """The `user` fixture (dana), allowed into the admin."""
    user.is_staff = user.is_superuser = True
    user.save()
    return user


@pytest.fixture
def empty_site(simulator, staff) -> Site:
    return Site(simulator.url, nav_pages())


@pytest.fixture
def filled_site(simulator, staff, auth_client) -> Site:
    return fill(simulator.url, staff, auth_client)
