"""Nothing leaked: login on every URL, CSRF on every POST, a strict CSP with nonces,
escaped user text, API keys nowhere but the outgoing request, ownership of notes
and votes, admin for admins only, hashed and revocable tokens, login throttling."""

import hashlib
import json
import logging
import re
import uuid
from html.parser import HTMLParser

import httpx
import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

import compare.http
from compare.http import build_client
from compare.models import ApiToken, Criterion, Generation, Note, Run, Suite, SuiteCase, SuiteRun, Vote
from tests.factories import BOTH, DUMMY_TASKS, IMMEDIATE_TASKS, Recorder, make_user, new_run, png, succeed

pytestmark = pytest.mark.django_db
MODELS = BOTH
XSS = '<script>alert(1)</script> and "><img src=x onerror=alert(1)>'
XSS_RAW = ["<script>alert(1)", "<img src=x onerror", "onerror=alert(1)>"]


@pytest.fixture(autouse=True)
def _fresh_cache(settings):
    cache.clear()  # login counters and the status page's last check
    settings.TASKS = DUMMY_TASKS
    yield
    cache.clear()


def make_run(user, prompt="a lighthouse at dusk", finished=True) -> Run:
    """A run with a reference, one image per side, a note and a criterion to rate."""
    run = new_run(user, prompt, references=[png("blue")])
    if finished:
        for gen, color in zip(run.generations.all(), ["red", "green"], strict=True):
            succeed(gen, png(color))
    Note.objects.create(run=run, author=user, body="first impressions")
    Criterion.objects.get_or_create(name="Overall")
    return run


@pytest.fixture
def run(user):
    return make_run(user)


# --- the URL map -------------------------------------------------------------------------

CONVERTER = re.compile(r"<(?:(?P<conv>\w+):)?(?P<name>\w+)>")
MADE_UP = {"uuid": str(uuid.uuid4()), "int": "987654", "str": "made-up", "slug": "made-up", "path": "made/up"}


def app_patterns():
    """(route, name) for every pattern of compare.urls but the admin and the simulator."""
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            continue  # admin/ (tested below) and sim/ (fake data only, by design)
        assert isinstance(entry, URLPattern)
        yield str(entry.pattern), entry.name


def fill(route: str, values: dict[str, str] | None = None) -> str:
    route = route.lstrip("^").rstrip("$")
    if "(" in route or "\\" in route:
        raise AssertionError(f"no filler for regex route {route!r}")
    path = CONVERTER.sub(lambda m: (values or {}).get(m["name"]) or MADE_UP[m["conv"] or "str"], route)
    return "/" + path


def real_values(run: Run) -> dict[str, str]:
    gen, note, reference = run.generations.order_by("position").first(), run.notes.first(), run.references.first()
    assert gen and note and reference, "the run needs a generation, a note and a reference"
    image = gen.images.first()
    assert image, "the generation needs an image"
    return {
        "run_id": str(run.id),
        "generation_id": str(gen.id),
        "note_id": str(note.id),
        "sha256": image.sha256,
        "reference_id": str(reference.id),
        "name": "votes",
    }


def paths(run: Run) -> list[tuple[str, str]]:
    """Every app URL twice: with made-up ids and with the ids of a real run."""
    result = []
    for route, name in app_patterns():
        if route == "^api/":
            result.append(("/api/made-up", name))
            continue
        result += [(fill(route), name), (fill(route, real_values(run)), name)]
    return result


PUBLIC = {"login"}  # the login page itself


def test_every_url_needs_a_login_or_a_token(run):
    anonymous = Client(raise_request_exception=False)
    checked = 0
    for path, name in paths(run):
        if name in PUBLIC:
            continue
        for method in ("get", "post"):
            response = getattr(anonymous, method)(path)
            where = f"{method.upper()} {path} ({name})"
            assert response.status_code < 500, where
            if path.startswith("/api/"):
                assert response["Content-Type"].startswith("application/json"), where
                # The catch-all answers 404 naming the endpoints; the endpoints themselves want a token.
                expected = {404} if name is None else {401, 405}  # 405: a method this endpoint lacks
                assert response.status_code in expected, where
                assert "error" in response.json(), where
            elif response.status_code == 405:
                # GET-only views that check the login themselves (images: tokens too) refuse POST first.
                assert method == "post" or name == "logout", where
                assert b"<" not in response.content, where
            else:
                assert response.status_code == 302, where
                assert response["Location"].startswith("/login/"), where
            checked += 1
    assert checked > 40


def test_images_and_references_need_a_login_even_with_real_ids(run):
    anonymous = Client()
    gen = run.generations.first()
    image, ref = gen.images.first(), run.references.first()
    for url in (image.url, image.thumbnail_url, ref.url, ref.thumbnail_url, f"/runs/{run.id}/images/{image.sha256}"):
        response = anonymous.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url
        assert not response.content


def test_the_api_wants_a_token_not_the_session(auth_client, run):
    response = auth_client.get(f"/api/runs/{run.id}")
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Bearer"
    response = auth_client.post(
        "/api/runs", json.dumps({"prompt": "x", "models": MODELS}), content_type="application/json"
    )
    assert response.status_code == 401
    assert Run.objects.count() == 1


# --- CSRF ----------------------------------------------------------------------------------


def csrf_client(user) -> Client:
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(user)
    return client


def page_token(client: Client, url: str = "/") -> str:
    """The token htmx sends: the X-CSRFToken of the hx-headers attribute on <body>."""
    page = client.get(url)
    assert page.status_code == 200
    match = re.search(r"<body[^>]*\shx-headers='([^']*)'", page.content.decode())
    assert match, "no hx-headers on <body>"
    headers = json.loads(match[1])
    assert set(headers) == {"X-CSRFToken"} and len(headers["X-CSRFToken"]) >= 32
    return headers["X-CSRFToken"]


def test_every_post_without_a_csrf_token_is_refused(user, run):
    client = csrf_client(user)
    refused = 0
    for path, name in paths(run):
        if path.startswith("/api/"):
            continue  # token-authenticated and CSRF-exempt by design (tested above)
        response = client.post(path, {"body": "x", "choice": "tie", "name": "t"})
        assert response.status_code == 403, f"POST {path} ({name}) → {response.status_code}"
        refused += 1
    assert refused > 40
    for path in ("/admin/login/", "/admin/compare/run/add/"):
        assert client.post(path, {}).status_code == 403, path
    assert Vote.objects.count() == 0 and Note.objects.count() == 1 and Run.objects.count() == 1


def test_every_state_changing_post_works_with_the_token_from_the_page(user, run):
    client = csrf_client(user)
    token = page_token(client, run.get_absolute_url())
    gen = run.generations.order_by("position").first()
    note = run.notes.first()
    criterion = Criterion.objects.get(name="Overall")
    posts = [
        (f"/runs/{run.id}/vote", {"choice": "gen:0"}),
        (f"/runs/{run.id}/notes", {"body": "second thoughts"}),
        (f"/runs/{run.id}/notes/{note.id}/edit", {"body": "first impressions, edited"}),
        (f"/runs/{run.id}/tags", {"add": "poster"}),
        (f"/runs/{run.id}/generations/{gen.id}/rate", {f"stars-{criterion.id}": "4"}),
        (f"/runs/{run.id}/reveal", {}),
        (f"/runs/{run.id}/notes/{note.id}/delete", {}),
        ("/settings/tokens", {"name": "ci"}),
        ("/", {"prompt": "a second run", "models": MODELS}),
    ]
    for path, data in posts:
        without = client.post(path, data)
        assert without.status_code == 403, path
        with_token = client.post(path, data, headers={"X-CSRFToken": token})
        assert with_token.status_code in (200, 302), f"POST {path} → {with_token.status_code}"
    assert Vote.objects.values_list("verdict", "winner__position").get(run=run, user=user) == ("better", 0)
    assert list(run.notes.values_list("body", flat=True)) == ["second thoughts"]
    assert run.tags.filter(name="poster").exists()
    assert gen.ratings.get(user=user).stars == 4
    assert ApiToken.objects.filter(user=user, name="ci").exists()
    assert Run.objects.count() == 2
    # The form field works too (no JavaScript), and logging out is a POST like any other.
    assert client.post("/logout/").status_code == 403
    assert client.post("/logout/", {"csrfmiddlewaretoken": token}).status_code == 302
    assert client.get("/").status_code == 302


# --- headers and markup ----------------------------------------------------------------------


def fake_model_lists(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/models") and "gemini" in request.url.path:
        return httpx.Response(200, json={"models": [{"name": "models/gemini-3-pro-image"}]})
    if request.url.path.endswith("/models"):
        return httpx.Response(200, json={"data": [{"id": "gpt-image-2"}]})
    return httpx.Response(404, json={"error": {"message": "not here"}})


def csp(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in header.split(";") if d.strip()}


class Markup(HTMLParser):
    """Collects <script>/<style> tags and any inline style or event-handler attribute."""

    def __init__(self):
        super().__init__()
        self.scripts, self.styles, self.inline = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts.append(attrs)
        if tag == "style":
            self.styles.append(attrs)
        for name in attrs:
            if name == "style" or name.startswith("on") or name.startswith("hx-on"):
                self.inline.append(f"<{tag} {name}={attrs[name]!r}>")

    handle_startendtag = handle_starttag


def suite_page_urls(author) -> list[str]:
    """The suite pages for `page_urls`: a suite with a case, the page of a suite run of it
    (one case-sample with an image per model), and the page comparing two suite runs."""
    suite = Suite.objects.create(name="Security suite", created_by=author)
    SuiteCase.objects.create(suite=suite, title="Poster", prompt='A poster that says "SALE"', expectations=["SALE"])
    suite_runs = []
    for _ in range(2):
        suite_run = SuiteRun.objects.create(
            suite=suite,
            suite_name=suite.name,
            cases=[c.snapshot() for c in suite.cases.all()],
            model_keys=list(BOTH),
            samples=1,
            author=author,
        )
        run = make_run(author, 'A poster that says "SALE"')
        Run.objects.filter(pk=run.pk).update(suite_run=suite_run, suite_case=0, suite_sample=0)
        suite_runs.append(suite_run)
    a, b = suite_runs
    return [suite.get_absolute_url(), b.get_absolute_url(), f"/suite-runs/compare?a={a.pk}&b={b.pk}"]


def page_urls(run: Run) -> list[str]:
    gen = run.generations.order_by("position").first()
    assert gen, "the run needs a generation"
    image = gen.images.first()
    assert image, "the generation needs an image"
    return [
        "/",
        f"/?from={run.id}",
        "/runs/",
        run.get_absolute_url(),
        run.get_absolute_url() + "?arena=1",
        f"/runs/{run.id}/images/{image.sha256}",
        "/leaderboard",
        "/scorecard",
        "/suites/",
        *suite_page_urls(run.author),
        "/settings/tokens",
        "/status",
        # htmx fragments
        "/runs/options?part=options&models=gpt-image-2",
        "/runs/options?part=summary&models=gpt-image-2",
        f"/runs/{run.id}/parts/notes",
        f"/runs/{run.id}/parts/votes",
        f"/runs/{run.id}/generations/{gen.id}",
    ]


def test_pages_have_a_strict_csp_and_no_inline_script_or_style(auth_client, run, monkeypatch):
    monkeypatch.setattr(compare.http, "_client", build_client(httpx.MockTransport(fake_model_lists)))
    login_page = Client().get("/login/")
    for url, response in [("/login/", login_page)] + [(u, auth_client.get(u)) for u in page_urls(run)]:
        assert response.status_code == 200, url
        policy = csp(response)
        assert "'unsafe-inline'" not in response["Content-Security-Policy"], url
        assert "'unsafe-eval'" not in response["Content-Security-Policy"], url
        assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"], url
        assert policy["default-src"] == ["'self'"] and policy["base-uri"] == ["'none'"], url
        nonces = [v for v in policy["script-src"] if v.startswith("'nonce-")]
        assert set(policy["script-src"]) == {"'self'", *nonces} and len(nonces) <= 1, url
        markup = Markup()
        markup.feed(response.content.decode())
        # Django adds the nonce only to responses that used it: every full page does.
        fragment = "/parts/" in url or "/options" in url or "/generations/" in url
        assert fragment or (len(nonces) == 1 and len(nonces[0]) > 20), url
        nonce = nonces[0][len("'nonce-") : -1] if nonces else None
        assert markup.inline == [], f"{url}: inline style/handlers {markup.inline}"
        for tag in markup.scripts + markup.styles:
            assert tag.get("nonce") == nonce, f"{url}: {tag} lacks this request's nonce"
        assert response["X-Content-Type-Options"] == "nosniff", url
        assert response["X-Frame-Options"] == "DENY", url
        assert response["Referrer-Policy"] == "same-origin", url
    # A fresh nonce per response.
    assert csp(auth_client.get("/"))["script-src"] != csp(auth_client.get("/"))["script-src"]


def test_image_responses_carry_their_type_and_nosniff(auth_client, run):
    gen = run.generations.first()
    image, ref = gen.images.first(), run.references.first()
    for url, ctype in [
        (image.url, "image/png"),
        (image.thumbnail_url, "image/webp"),
        (ref.url, "image/png"),
        (ref.thumbnail_url, "image/webp"),
    ]:
        response = auth_client.get(url)
        assert response.status_code == 200, url
        assert response["Content-Type"] == ctype, url
        assert response["X-Content-Type-Options"] == "nosniff", url
        assert response["X-Frame-Options"] == "DENY", url


def test_hostile_prompts_and_notes_are_escaped_everywhere(auth_client, user):
    response = auth_client.post("/", {"prompt": XSS, "models": MODELS, "tags": "poster"})
    assert response.status_code == 302
    run = Run.objects.get(prompt=XSS)
    for gen in run.generations.all():
        gen.status, gen.finished_at = Generation.Status.SUCCEEDED, timezone.now()
        gen.save()
    assert auth_client.post(f"/runs/{run.id}/notes", {"body": XSS}).status_code == 302
    pages = [
        run.get_absolute_url(),
        "/runs/",
        "/runs/?q=lighthouse",
        f"/?from={run.id}",
        f"/runs/{run.id}/parts/notes",
        run.get_absolute_url() + "?arena=1",
    ]
    for url in pages:
        html = auth_client.get(url).content.decode()
        for raw in XSS_RAW:
            assert raw not in html, f"{url} renders {raw!r} unescaped"
    html = auth_client.get(run.get_absolute_url()).content.decode()
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 2  # the prompt and the note
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in auth_client.get("/runs/").content.decode()


# --- API keys ----------------------------------------------------------------------------------

OPENAI_KEY = "sk-test-SECRET123-openai-Zq9vWx"
GEMINI_KEY = "AIzaTEST-SECRET456-gemini-Xy7Kp"


def key_quoting_providers(request: httpx.Request) -> httpx.Response:
    """Both providers at the HTTP boundary. Every reply quotes the key back, the way
    real 401s do ("Incorrect API key provided: sk-…")."""
    path = request.url.path
    if request.url.host == "api.openai.com":
        return httpx.Response(
            401,
            json={
                "error": {
                    "message": f"Incorrect API key provided: {OPENAI_KEY}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            },
        )
    if request.url.host == "generativelanguage.googleapis.com" and path.endswith(":generateContent"):
        # A success whose text quotes the key.
        return httpx.Response(
            200,
            json={
                "candidates": [
                    {
                        "content": {
                            "role": "model",
                            "parts": [
                                {"text": f"Here you go (key {GEMINI_KEY})."},
                                {
                                    "inlineData": {
                                        "mimeType": "image/png",
                                        "data": __import__("base64").b64encode(png("purple")).decode(),
                                    }
                                },
                            ],
                        },
                        "finishReason": "STOP",
                        "index": 0,
                    }
                ],
                "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 1120, "totalTokenCount": 1130},
                "modelVersion": "gemini-3-pro-image",
            },
        )
    if request.url.host == "generativelanguage.googleapis.com":
        return httpx.Response(
            400,
            json={
                "error": {
                    "code": 400,
                    "status": "INVALID_ARGUMENT",
                    "message": f"API key not valid. Please pass a valid API key. (key={GEMINI_KEY})",
                }
            },
        )
    return httpx.Response(404)


def every_db_value() -> str:
    chunks = []
    for model in apps.get_models():
        for row in model._default_manager.all().values():
            chunks.append(repr(row))
    return "\n".join(chunks)


def test_api_keys_reach_the_provider_and_nothing_else(
    auth_client, user, settings, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    settings.TASKS = IMMEDIATE_TASKS
    settings.COMPARE_MAX_ATTEMPTS = 1
    provider = Recorder(key_quoting_providers)
    monkeypatch.setattr(compare.http, "_client", build_client(httpx.MockTransport(provider)))
    caplog.set_level(logging.DEBUG)
    for name in ("compare", "httpx", "httpcore", "django", "django.request", "django.tasks"):
        caplog.set_level(logging.DEBUG, logger=name)

    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.post("/", {"prompt": "a red fox", "models": MODELS})
    assert response.status_code == 302, response.content.decode()[:500]
    run = Run.objects.get()
    gens = {g.model_key: g for g in run.generations.all()}
    assert not any(g.simulated for g in gens.values())
    assert gens["gpt-image-2"].status == Generation.Status.FAILED
    assert gens["gpt-image-2"].error_kind == "auth"
    assert gens["gemini-3-pro-image"].status == Generation.Status.SUCCEEDED

    # The outgoing requests did carry the keys, each to its own provider.
    sent = {r.url.host: r.headers for r in provider.requests}
    assert sent["api.openai.com"]["authorization"] == f"Bearer {OPENAI_KEY}"
    assert sent["generativelanguage.googleapis.com"]["x-goog-api-key"] == GEMINI_KEY
    assert "authorization" not in sent["generativelanguage.googleapis.com"]
    assert all(OPENAI_KEY not in str(r.url) and GEMINI_KEY not in str(r.url) for r in provider.requests)

    token = ApiToken.issue(user, "t")[1]
    bearer = {"Authorization": f"Bearer {token}"}
    seen = {
        "run page": auth_client.get(run.get_absolute_url()),
        "pane": auth_client.get(f"/runs/{run.id}/generations/{gens['gpt-image-2'].id}"),
        "history": auth_client.get("/runs/"),
        "status": auth_client.get("/status"),  # asks both providers for their model lists
        "new run": auth_client.get("/"),
        "api detail": Client().get(f"/api/runs/{run.id}", headers=bearer),
        "api list": Client().get("/api/runs", headers=bearer),
    }
    assert any("/models" in r.url.path for r in provider.requests), "the status page asked no provider"
    for where, response in seen.items():
        assert response.status_code == 200, where
        body = response.content.decode()
        for key in (OPENAI_KEY, GEMINI_KEY, "SECRET123", "SECRET456"):
            assert key not in body, f"{key} in the {where}"
    detail = seen["api detail"].json()
    failed = next(g for g in detail["generations"] if g["model"] == "gpt-image-2")
    assert failed["error"]["message"], "the provider's message itself is still shown, scrubbed"

    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    stored = every_db_value()
    for key in (OPENAI_KEY, GEMINI_KEY, "SECRET123", "SECRET456"):
        assert key not in logged, f"{key} in a log record"
        assert key not in stored, f"{key} in the database"


# --- ownership and roles ------------------------------------------------------------------------


def test_nobody_edits_or_deletes_someone_elses_note(client, run, other_user):
    note = run.notes.get()
    client.force_login(other_user)
    for path in (f"/runs/{run.id}/notes/{note.id}/edit", f"/runs/{run.id}/notes/{note.id}/delete"):
        assert client.post(path, {"body": "defaced"}).status_code == 404, path
    assert client.get(f"/runs/{run.id}/notes/{note.id}/edit").status_code == 404
    note.refresh_from_db()
    assert note.body == "first impressions"


def test_a_vote_only_ever_changes_the_voters_own_row(client, run, user, other_user):
    Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.BETTER, winner=run.generations.get(position=0))
    client.force_login(other_user)
    response = client.post(f"/runs/{run.id}/vote", {"choice": "gen:1", "user": user.id, "user_id": user.id})
    assert response.status_code == 302
    assert Vote.objects.values_list("verdict", "winner__position").get(run=run, user=user) == ("better", 0)
    assert Vote.objects.values_list("verdict", "winner__position").get(run=run, user=other_user) == ("better", 1)
    client.post(f"/runs/{run.id}/vote", {"choice": "tie"})
    votes = Vote.objects.values_list("user__username", "verdict", "winner__position")
    assert {name: (verdict, side) for name, verdict, side in votes} == {"dana": ("better", 0), "lee": ("tie", None)}


def test_the_admin_is_for_admins_only(client, user, django_user_model):
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert client.get("/admin/compare/teamsettings/").status_code == 302
    staff = make_user("sam", is_staff=True)
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/auth/user/").status_code == 403
    assert client.get("/admin/auth/user/add/").status_code == 403
    assert client.post("/admin/auth/user/add/", {"username": "mallory"}).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_user"))
    client.force_login(django_user_model.objects.get(pk=staff.pk))
    assert client.get("/admin/auth/user/").status_code == 200
    assert not django_user_model.objects.filter(username="mallory").exists()


def test_team_settings_are_admin_only(client, user):
    staff = make_user("sam", is_staff=True)
    client.force_login(staff)
    assert client.get("/admin/compare/teamsettings/").status_code == 403
    root = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(root)
    assert client.get("/admin/compare/teamsettings/").status_code in (200, 302)


def test_api_tokens_are_stored_hashed_and_revoked_ones_are_refused(auth_client, user, other_user):
    page = auth_client.post("/settings/tokens", {"name": "script"}).content.decode()
    shown = re.search(r"cmp_[A-Za-z0-9_\-]{40,}", page)
    assert shown, "the new token is not shown"
    token = shown[0]
    row = ApiToken.objects.get(user=user, name="script")
    assert row.digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in every_db_value() and row.hint == token[:8]
    assert token not in auth_client.get("/settings/tokens").content.decode(), "shown once only"
    api = Client()
    assert api.get("/api/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # Someone else cannot revoke it; its owner can.
    intruder = Client()
    intruder.force_login(other_user)
    intruder.post("/settings/tokens", {"revoke": row.id})
    assert api.get("/api/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    auth_client.post("/settings/tokens", {"revoke": row.id})
    response = api.get("/api/runs", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]
    assert api.get("/api/runs", headers={"Authorization": f"Bearer {token}x"}).status_code == 401


# --- login throttling (django-axes, compare/lockout.py) -----------------------------------------


def attempt(client: Client, username: str, password: str, ip: str = "10.0.0.1", path: str = "/login/"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=ip)


@pytest.fixture
def password_checks(monkeypatch) -> list[str]:
    """The usernames whose password Django's ModelBackend looked at."""
    from django.contrib.auth.backends import ModelBackend

    checked: list[str] = []
    real = ModelBackend.authenticate

    def spy(self, request, username=None, password=None, **kwargs):
        checked.append(username)
        return real(self, request, username, password, **kwargs)

    monkeypatch.setattr(ModelBackend, "authenticate", spy)
    return checked


def failures(username: str, ip: str = "10.0.0.1") -> int:
    """The failed logins django-axes counts in the database for this username and address."""
    from axes.models import AccessAttempt

    rows = AccessAttempt.objects.filter(username=username, ip_address=ip)
    return sum(rows.values_list("failures_since_start", flat=True))


def age_attempts(**delta: float) -> None:
    """Let time pass for the lock: the counted failures become this much older."""
    from datetime import timedelta

    from axes.models import AccessAttempt
    from django.db.models import F

    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(**delta))


def test_login_locks_out_after_five_failures_without_checking_the_password(client, user, monkeypatch, password_checks):
    for _ in range(5):
        response = attempt(client, "dana", "wrong")
        assert response.status_code == 200 and "correct username and password" in response.content.decode()
    assert failures("dana") == 5  # counted in the database, shared by every process
    password_checks.clear()
    checked: list[dict] = []
    from django.contrib.auth import authenticate as real

    def spy(*args, **kwargs):
        checked.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr("django.contrib.auth.forms.authenticate", spy)  # what the login form calls
    for password in ("wrong", "pw-dana-123"):  # even the right password is not looked at
        response = attempt(client, "dana", password)
        assert response.status_code == 429
        assert "Too many failed attempts; try again in 15 minutes." in response.content.decode()
        assert 840 < int(response["Retry-After"]) <= 900
        assert "_auth_user_id" not in client.session
    assert checked == [] and password_checks == []
    # The username is matched case-insensitively, so "DANA" is no way around it.
    assert attempt(client, "DANA ", "pw-dana-123").status_code == 429
    # Refused attempts are not counted: they do not push the end of the lock further away.
    assert failures("dana") == 5


def test_the_lockout_page_is_the_login_page_with_its_message(client, user):
    for _ in range(5):
        attempt(client, "dana", "wrong")
    response = client.post("/login/", {"username": "dana", "password": "x", "next": "/runs/"}, REMOTE_ADDR="10.0.0.1")
    assert response.status_code == 429
    page = response.content.decode()
    assert 'role="alert">Too many failed attempts; try again in 15 minutes.</p>' in page
    assert 'name="username" value="dana"' in page and 'name="next" value="/runs/"' in page
    assert "correct username and password" not in page


def test_other_users_and_other_addresses_are_unaffected(client, user, other_user):
    for _ in range(5):
        attempt(client, "dana", "wrong")
    assert attempt(client, "dana", "wrong").status_code == 429
    assert attempt(Client(), "dana", "pw-dana-123", ip="10.0.0.2").status_code == 302
    assert attempt(Client(), "lee", "pw-lee-123").status_code == 302


def test_a_successful_login_resets_the_count(client, user):
    for _ in range(4):
        attempt(client, "dana", "wrong")
    assert attempt(client, "dana", "pw-dana-123").status_code == 302
    assert failures("dana") == 0
    client.logout()
    for _ in range(4):
        assert attempt(client, "dana", "wrong").status_code == 200
    assert attempt(client, "dana", "pw-dana-123").status_code == 302


def test_the_lock_lifts_after_the_window(client, user):
    for _ in range(5):
        attempt(client, "dana", "wrong")
    assert attempt(client, "dana", "pw-dana-123").status_code == 429
    age_attempts(minutes=14)
    response = attempt(client, "dana", "pw-dana-123")
    assert response.status_code == 429 and "try again in 1 minute." in response.content.decode()
    assert 0 < int(response["Retry-After"]) <= 60
    age_attempts(seconds=61)
    assert attempt(client, "dana", "pw-dana-123").status_code == 302


def test_the_admin_login_shares_the_limit(client, django_user_model, password_checks):
    django_user_model.objects.create_user("root", password="pw-root-123", is_staff=True, is_superuser=True)
    for _ in range(5):
        response = attempt(client, "root", "wrong", path="/admin/login/")
        assert response.status_code == 200 and "correct username and password" in response.content.decode()
    password_checks.clear()
    response = attempt(client, "root", "pw-root-123", path="/admin/login/")
    assert "Too many failed attempts" in response.content.decode()
    assert response.status_code == 429 and 840 < int(response["Retry-After"]) <= 900
    assert "_auth_user_id" not in client.session
    assert password_checks == []  # the admin's form asked, the throttle answered first
    assert attempt(client, "root", "pw-root-123").status_code == 429


def test_a_lock_earned_on_the_login_page_holds_on_the_admin_login(client, django_user_model, password_checks):
    django_user_model.objects.create_user("root", password="pw-root-123", is_staff=True, is_superuser=True)
    for _ in range(5):
        attempt(client, "root", "wrong")
    password_checks.clear()
    response = attempt(client, "root", "pw-root-123", path="/admin/login/")
    assert response.status_code == 429 and "Too many failed attempts" in response.content.decode()
    assert password_checks == [] and "_auth_user_id" not in client.session


def test_an_admin_sees_the_attempts_and_can_lift_a_lock(client, user, django_user_model):
    from io import StringIO

    from django.core.management import call_command

    for _ in range(5):
        attempt(client, "dana", "wrong")
    assert attempt(client, "dana", "pw-dana-123").status_code == 429
    # The audit trail: the admin lists the attempts (and, below, the successful logins).
    root = django_user_model.objects.create_user("root", password="pw-root-123", is_staff=True, is_superuser=True)
    admin = Client()
    admin.force_login(root)
    listing = admin.get("/admin/axes/accessattempt/").content.decode()
    assert "dana" in listing and "10.0.0.1" in listing
    # `manage.py axes_reset_username` lifts the lock of one name.
    out = StringIO()
    call_command("axes_reset_username", "dana", stdout=out)
    assert failures("dana") == 0
    assert attempt(client, "dana", "pw-dana-123").status_code == 302
    logins = admin.get("/admin/axes/accesslog/").content.decode()
    assert "dana" in logins


def test_behind_a_trusted_proxy_the_forwarded_client_address_counts(client, user, settings):
    settings.COMPARE_TRUSTED_PROXIES = ["127.0.0.1"]

    def via_proxy(forwarded_for: str, password: str = "wrong"):
        return client.post(
            "/login/",
            {"username": "dana", "password": password},
            REMOTE_ADDR="127.0.0.1",
            HTTP_X_FORWARDED_FOR=forwarded_for,
        )

    for _ in range(5):
        via_proxy("203.0.113.7")
    assert via_proxy("203.0.113.7").status_code == 429
    assert failures("dana", ip="203.0.113.7") == 5
    # A client cannot escape by prepending addresses of its own: the proxy's hop counts.
    assert via_proxy("198.51.100.1, 203.0.113.7").status_code == 429
    assert via_proxy("203.0.113.8", "pw-dana-123").status_code == 302
    # X-Forwarded-For from anyone but the trusted proxy is ignored.
    spoofed = Client().post(
        "/login/",
        {"username": "dana", "password": "pw-dana-123"},
        REMOTE_ADDR="192.0.2.50",
        HTTP_X_FORWARDED_FOR="203.0.113.7",
    )
    assert spoofed.status_code == 302


def test_client_ip_without_trusted_proxies_is_the_peer(rf, settings):
    from compare.proxies import client_ip

    settings.COMPARE_TRUSTED_PROXIES = []
    assert client_ip(rf.get("/", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="203.0.113.7")) == "192.0.2.1"
    settings.COMPARE_TRUSTED_PROXIES = ["192.0.2.1", "192.0.2.2"]
    request = rf.get("/", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7, 192.0.2.2")
    assert client_ip(request) == "203.0.113.7"
    # A hop that is no address (the database stores addresses) ends the walk at the proxy.
    request = rf.get("/", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="203.0.113.7, not-an-address")
    assert client_ip(request) == "192.0.2.1"
    request = rf.get("/", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="[2001:db8::7]:443")
    assert client_ip(request) == "2001:db8::7"
