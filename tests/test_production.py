"""The production profile (COMPARE_PROFILE=production): `check --deploy` is clean,
it refuses to start half-configured, it serves HTTPS-only pages with hardened
cookies, and the simulator is not mounted. Each case runs manage.py in a fresh
process, because settings are read once at start-up."""

import json
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOST = "compare.example.com"


def environment(tmp_path: Path, **overrides: str | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COMPARE_", "OPENAI_", "GEMINI_")) and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "compare.settings",
            "COMPARE_PROFILE": "production",
            "COMPARE_SECRET_KEY": secrets.token_urlsafe(50),
            "COMPARE_ALLOWED_HOSTS": HOST,
            "COMPARE_VAR_DIR": str(tmp_path / "var"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'compare.sqlite3'}",
        }
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_passes_with_no_warnings(tmp_path):
    result = manage(environment(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output, output
    assert "WARNING" not in output and "?: (" not in output, output


def test_the_embedded_profile_is_what_check_deploy_warns_about(tmp_path):
    """The control: the same check fails without the production profile."""
    env = environment(tmp_path, COMPARE_PROFILE=None, DATABASE_URL=None)
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0 and "security.W" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"COMPARE_SECRET_KEY": None}, "COMPARE_SECRET_KEY is required in the production profile"),
        ({"COMPARE_SECRET_KEY": ""}, "COMPARE_SECRET_KEY is required in the production profile"),
        ({"COMPARE_SECRET_KEY": "short-and-guessable"}, "COMPARE_SECRET_KEY is too weak"),
        ({"COMPARE_SECRET_KEY": "django-insecure-" + "x" * 60}, "COMPARE_SECRET_KEY is too weak"),
        ({"COMPARE_ALLOWED_HOSTS": None}, "COMPARE_ALLOWED_HOSTS is required in the production profile"),
        ({"COMPARE_ALLOWED_HOSTS": " , "}, "COMPARE_ALLOWED_HOSTS is required in the production profile"),
        ({"COMPARE_ALLOWED_HOSTS": "*"}, "COMPARE_ALLOWED_HOSTS may not be '*'"),
        ({"COMPARE_DEBUG": "1"}, "COMPARE_DEBUG must be off in the production profile"),
    ],
)
def test_production_refuses_to_start_half_configured(tmp_path, overrides, message):
    result = manage(environment(tmp_path, **overrides), "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr, result.stderr[-2000:]


SMOKE = textwrap.dedent(f"""
    import json, django
    django.setup()
    from django.conf import settings
    from django.test import Client
    from django.urls import Resolver404, resolve

    client = Client(HTTP_HOST="{HOST}")
    plain = client.get("/login/")
    page = client.get("/login/", secure=True)
    proxied = client.get("/login/", HTTP_X_FORWARDED_PROTO="https")
    try:
        resolve("/sim/openai/v1/models")
        sim = True
    except Resolver404:
        sim = False
    cookie = page.cookies.get("csrftoken")
    print(json.dumps({{
        "plain": [plain.status_code, plain.get("Location")],
        "page": page.status_code, "proxied": proxied.status_code,
        "hsts": page.get("Strict-Transport-Security"),
        "csp": page.get("Content-Security-Policy"),
        "static": "/static/compare." in page.content.decode() and ".css" in page.content.decode(),
        "cookie": {{"secure": bool(cookie["secure"]), "httponly": bool(cookie["httponly"])}} if cookie else None,
        "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
        "other_host": Client(HTTP_HOST="evil.example.net").get("/login/", secure=True).status_code,
        "simulator_mounted": sim,
        "simulator_enabled": settings.COMPARE_SIMULATOR_ENABLED,
    }}))
""")


def test_production_serves_https_only_with_hardened_cookies(tmp_path):
    env = environment(tmp_path)
    for args in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        result = manage(env, *args)
        assert result.returncode == 0, result.stdout + result.stderr
    result = subprocess.run(
        [sys.executable, "-c", SMOKE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["plain"] == [301, f"https://{HOST}/login/"]
    assert seen["page"] == 200 and seen["proxied"] == 200  # behind a proxy that sets X-Forwarded-Proto
    assert seen["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert "'nonce-" in seen["csp"] and "frame-ancestors 'none'" in seen["csp"]
    assert seen["static"], "collectstatic's hashed names are used"
    assert seen["cookie"] == {"secure": True, "httponly": True} and seen["session_cookie_secure"]
    assert seen["other_host"] == 400
    assert seen["simulator_mounted"] is False and seen["simulator_enabled"] is False


@pytest.mark.parametrize(
    "profile,simulator,mounted",
    [
        ("embedded", None, True),
        ("embedded", "0", False),
        ("production", None, False),
    ],
)
def test_the_simulator_is_mounted_only_when_enabled(tmp_path, profile, simulator, mounted):
    env = environment(tmp_path, COMPARE_PROFILE=profile, COMPARE_SIMULATOR=simulator)
    code = (
        "import django; django.setup(); from django.urls import resolve, Resolver404\n"
        "try:\n    resolve('/sim/openai/v1/models'); print('mounted')\n"
        "except Resolver404:\n    print('absent')"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == ("mounted" if mounted else "absent")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_and_get(env: dict[str, str], command: list[str], port: int) -> tuple[int, str]:
    """Start a server, GET /login/ as a TLS-terminating proxy would; (status, Location)."""
    import time
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        opener = urllib.request.build_opener(NoRedirect)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/login/",
            headers={"Host": HOST, "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"},
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with opener.open(request, timeout=5) as response:
                    return response.status, response.headers.get("Location", "")
            except urllib.error.HTTPError as exc:
                return exc.code, exc.headers.get("Location", "")
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_waitress_behind_a_proxy_serves_https_pages(tmp_path):
    """The documented bare-waitress command trusts the proxy's X-Forwarded-Proto."""
    env = environment(tmp_path)
    assert manage(env, "collectstatic", "--noinput").returncode == 0
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "waitress-serve"),
        f"--listen=127.0.0.1:{port}",
        "--trusted-proxy=127.0.0.1",
        "--trusted-proxy-headers=x-forwarded-for x-forwarded-proto",
        "compare.wsgi:application",
    ]
    assert serve_and_get(env, command, port) == (200, "")


def test_manage_py_serve_behind_a_proxy_serves_https_pages(tmp_path):
    env = environment(tmp_path, COMPARE_TRUSTED_PROXIES="127.0.0.1")
    for args in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        assert manage(env, *args).returncode == 0
    port = free_port()
    status, location = serve_and_get(env, [sys.executable, "manage.py", "serve", "--port", str(port)], port)
    assert status == 200, f"{status} → {location}"


# --- `manage.py serve` believes the forwarding headers of the listed proxies only -----------------


@pytest.mark.parametrize(
    "proxies, believed",
    [
        ("192.0.2.1,192.0.2.2", False),  # several proxies, this client is none of them
        ("192.0.2.1,127.0.0.1", True),  # several proxies, this client is one of them
    ],
)
def test_manage_py_serve_believes_only_the_proxies_it_lists(tmp_path, proxies, believed):
    """With more than one proxy configured, a client that is none of them cannot claim HTTPS
    (or an address) by sending X-Forwarded-* itself: the page redirects to HTTPS as for anyone."""
    env = environment(tmp_path, COMPARE_TRUSTED_PROXIES=proxies)
    for args in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        assert manage(env, *args).returncode == 0
    port = free_port()
    status, location = serve_and_get(env, [sys.executable, "manage.py", "serve", "--port", str(port)], port)
    if believed:
        assert (status, location) == (200, "")
    else:
        assert (status, location) == (301, f"https://{HOST}/login/")


def test_manage_py_serve_counts_failed_logins_against_the_real_peer(tmp_path):
    """A client that is not a listed proxy cannot escape the login limit by sending a new
    X-Forwarded-For with every attempt."""
    import http.cookiejar
    import re
    import time
    import urllib.error
    import urllib.parse
    import urllib.request

    env = environment(
        tmp_path, COMPARE_PROFILE=None, COMPARE_ALLOWED_HOSTS=None, COMPARE_TRUSTED_PROXIES="192.0.2.1,192.0.2.2"
    )
    assert manage(env, "migrate", "--noinput").returncode == 0
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        url = f"http://127.0.0.1:{port}/login/"
        deadline = time.monotonic() + 30
        while True:
            try:
                with opener.open(url, timeout=5) as response:
                    page = response.read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, page[:500]

        def attempt(forwarded_for: str) -> int:
            body = urllib.parse.urlencode(
                {"csrfmiddlewaretoken": token.group(1), "username": "dana", "password": "wrong"}
            ).encode()
            request = urllib.request.Request(url, data=body, headers={"X-Forwarded-For": forwarded_for})
            try:
                with opener.open(request, timeout=10) as response:
                    return response.status
            except urllib.error.HTTPError as exc:
                return exc.code

        statuses = [attempt(f"203.0.113.{n}") for n in range(1, 7)]
        assert statuses == [200, 200, 200, 200, 200, 429]
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_proxy_middleware_walks_any_number_of_proxies():
    from compare.proxies import TrustedProxyMiddleware

    seen: dict[str, object] = {}

    def app(environ, start_response):
        seen.clear()
        seen.update(environ)
        return [b""]

    def call(peer: str, **headers: str) -> dict:
        environ = {"REMOTE_ADDR": peer, "wsgi.url_scheme": "http", "HTTP_HOST": "internal:8000"}
        environ.update({"HTTP_" + name.upper(): value for name, value in headers.items()})
        TrustedProxyMiddleware(app, ["10.0.0.1", "10.0.0.2"])(environ, lambda *a: None)
        return dict(seen)

    # Two proxies in a row: the nearest hop that is not one of them is the client.
    env = call("10.0.0.2", x_forwarded_for="6.6.6.6, 203.0.113.7, 10.0.0.1", x_forwarded_proto="https")
    assert env["REMOTE_ADDR"] == "203.0.113.7" and env["wsgi.url_scheme"] == "https"
    # Side by side: either one is believed.
    env = call("10.0.0.1", x_forwarded_for="203.0.113.8", x_forwarded_host="compare.example.com")
    assert env["REMOTE_ADDR"] == "203.0.113.8" and env["HTTP_HOST"] == "compare.example.com"
    # A value the client prepended does not win over the one the proxy wrote.
    assert call("10.0.0.1", x_forwarded_proto="https, http")["HTTP_X_FORWARDED_PROTO"] == "http"
    # Anyone else: the headers are dropped, nothing they claim is believed.
    env = call("192.0.2.50", x_forwarded_for="203.0.113.9", x_forwarded_proto="https", forwarded="for=1.2.3.4")
    assert env["REMOTE_ADDR"] == "192.0.2.50" and env["wsgi.url_scheme"] == "http"
    assert not {"HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_FORWARDED"} & set(env)


def test_failed_logins_are_counted_across_processes(tmp_path):
    """The counts are database rows (django-axes): failures in one process lock the
    username and address out in another, with no shared cache to run."""
    env = environment(tmp_path, COMPARE_PROFILE=None, COMPARE_ALLOWED_HOSTS=None)
    assert manage(env, "migrate", "--noinput").returncode == 0

    def attempts(*passwords: str) -> list[str]:
        code = textwrap.dedent(f"""
            from django.test import Client
            for password in {passwords!r}:
                data = {{"username": "dana", "password": password}}
                print(Client().post("/login/", data, REMOTE_ADDR="203.0.113.7").status_code)
        """)
        result = manage(env, "shell", "--no-imports", "-c", code)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout.split()

    assert attempts("wrong", "wrong", "wrong") == ["200", "200", "200"]
    assert attempts("wrong", "wrong", "another") == ["200", "200", "429"]


def test_a_body_that_never_comes_is_dropped_after_the_idle_timeout(tmp_path):
    """A client announces a body and never sends it: `serve` closes the connection after
    COMPARE_IDLE_TIMEOUT instead of waiting (it was 900 s), and keeps serving others."""
    import socket
    import time
    import urllib.request

    env = environment(tmp_path, COMPARE_PROFILE=None, COMPARE_ALLOWED_HOSTS=None, COMPARE_IDLE_TIMEOUT="2")
    assert manage(env, "migrate", "--noinput").returncode == 0
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                stalled = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        stalled.sendall(
            b"POST /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 100000\r\n\r\npartial"
        )
        stalled.settimeout(20)
        started = time.monotonic()
        try:
            closed = stalled.recv(1024) == b""  # the server hung up without an answer
        except ConnectionResetError:
            closed = True
        waited = time.monotonic() - started
        stalled.close()
        assert closed
        assert waited < 15, f"the stalled request was held for {waited:.1f} s"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=10) as response:
            assert response.status == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
