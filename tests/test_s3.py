"""Images on S3-compatible storage (compare/storage.py), against a local S3 server the tests
start themselves: moto's server over real HTTP, a fresh bucket per test.

moto stores and serves objects like S3 but accepts any presigned URL, expired or not; the
server here adds what S3 itself checks on one: the SigV4 query signature (recomputed with
the test's secret key) and its expiry, answered with S3's own 403 error bodies."""

import hashlib
import hmac
import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from compare import images, storage
from compare.checks import runner
from compare.models import ApiToken, Generation, Image, Reference, Vote
from tests.factories import GPT, NANO, add_image, make_run, new_run, png, submit_and_wait

pytestmark = pytest.mark.django_db

KEY_ID, SECRET, REGION = "AKIATESTCOMPARE00001", "compare-test-secret", "us-east-1"
ROOT = Path(__file__).resolve().parent.parent
NEEDLES = [*GPT, *NANO, "openai", "gemini", "google", "banana"]


# --- the local S3 server ------------------------------------------------------------------------


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def presigned_error(environ) -> tuple[str, str] | None:
    """What S3 answers to a presigned request that is expired or wrongly signed, else None."""
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    if "X-Amz-Signature" not in query:
        return None  # the SDK's own calls (Authorization header): moto's business
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if datetime.now(UTC) > signed_at + timedelta(seconds=int(query["X-Amz-Expires"])):
        return "AccessDenied", "Request has expired"
    scope = query["X-Amz-Credential"].split("/", 1)[1]
    canonical_query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query.items()) if k != "X-Amz-Signature")
    path = environ.get("RAW_URI", environ.get("PATH_INFO", "/")).split("?", 1)[0]
    assert query["X-Amz-SignedHeaders"] == "host"
    canonical = f"GET\n{path}\n{canonical_query}\nhost:{environ['HTTP_HOST']}\n\nhost\nUNSIGNED-PAYLOAD"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", query["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{SECRET}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), query["X-Amz-Signature"]):
        return "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided."
    return None


class CheckingMotoServer(ThreadedMotoServer):
    """moto's threaded server with S3's checks of presigned URLs in front of it."""

    def _server_entry(self) -> None:
        moto_app = DomainDispatcherApplication(create_backend_app)

        def app(environ, start_response):
            error = presigned_error(environ)
            if error is None:
                return moto_app(environ, start_response)
            code, message = error
            body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
            start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
            return [body]

        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


@pytest.fixture(scope="module")
def s3_endpoint():
    server = CheckingMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def use_bucket(settings, monkeypatch, endpoint: str, bucket: str) -> None:
    """Store files in `bucket`, configured as a deployment would be: through the
    environment and compare/storage.py."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    env = {"COMPARE_S3_BUCKET": bucket, "COMPARE_S3_ENDPOINT_URL": endpoint, "COMPARE_S3_REGION": REGION}
    configured = storage.s3_settings(env)
    assert configured is not None
    settings.STORAGES = {**settings.STORAGES, "default": configured.storage}


@pytest.fixture
def s3(s3_endpoint, settings, monkeypatch):
    """Files on a fresh bucket of the local S3 server. Yields a boto3 client, `.bucket` its name."""
    client = s3_client(s3_endpoint)
    bucket = f"compare-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    use_bucket(settings, monkeypatch, s3_endpoint, bucket)
    client.bucket = bucket
    yield client


def keys_of(client, bucket: str) -> list[str]:
    return [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def keys(s3) -> list[str]:
    return keys_of(s3, s3.bucket)


def stored_bytes(s3, key: str) -> bytes:
    return s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read()


def follow(client, url: str, s3_endpoint: str) -> httpx.Response:
    """Ask the app for `url`, check it answers with a presigned URL of the S3 server, and
    fetch that URL over HTTP as a browser would (no cookie, no credentials)."""
    response = client.get(url)
    assert response.status_code == 302, response.content[:300]
    location = response["Location"]
    assert location.startswith(s3_endpoint + "/") and "X-Amz-Signature=" in location
    return httpx.get(location)


# --- configuration ------------------------------------------------------------------------------


def test_settings_from_the_environment():
    assert storage.s3_settings({}) is None
    configured = storage.s3_settings(
        {"COMPARE_S3_BUCKET": "team-images", "COMPARE_S3_ENDPOINT_URL": "https://minio.example:9000/"}
    )
    assert configured is not None
    assert configured.storage["BACKEND"] == "storages.backends.s3.S3Storage"
    options = configured.storage["OPTIONS"]
    assert options["bucket_name"] == "team-images" and options["querystring_expire"] == 300
    assert options["addressing_style"] == "path" and options["querystring_auth"] is True
    assert configured.img_sources == ["https://minio.example:9000"]
    aws = storage.s3_settings({"COMPARE_S3_BUCKET": "team-images", "COMPARE_S3_REGION": "eu-west-3"})
    assert aws is not None and "https://team-images.s3.eu-west-3.amazonaws.com" in aws.img_sources
    assert aws.storage["OPTIONS"]["addressing_style"] == "virtual"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COMPARE_S3_URL_SECONDS": "soon"}, "COMPARE_S3_URL_SECONDS must be a whole number"),
        ({"COMPARE_S3_URL_SECONDS": "0"}, "COMPARE_S3_URL_SECONDS must be between 1 and 604800"),
        ({"COMPARE_S3_URL_SECONDS": "604801"}, "between 1 and 604800, got 604801"),
        ({"COMPARE_S3_ENDPOINT_URL": "minio:9000"}, "COMPARE_S3_ENDPOINT_URL must be an http:// or https:// URL"),
        ({"COMPARE_S3_ADDRESSING_STYLE": "dns"}, "COMPARE_S3_ADDRESSING_STYLE must be path, virtual or auto"),
    ],
)
def test_bad_settings_are_refused_with_a_message(env, message):
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        storage.s3_settings({"COMPARE_S3_BUCKET": "team-images", **env})


def test_the_image_origin_joins_the_content_security_policy(s3_endpoint, tmp_path):
    """Settings are read once per process: a fresh one with the bucket configured."""
    code = "import django; django.setup(); from django.conf import settings; print(settings.SECURE_CSP['img-src'])"
    env = {**os.environ, "COMPARE_S3_BUCKET": "team-images", "COMPARE_S3_ENDPOINT_URL": s3_endpoint}
    env |= {"DJANGO_SETTINGS_MODULE": "compare.settings", "COMPARE_VAR_DIR": str(tmp_path)}
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert s3_endpoint in shown.stdout and "'self'" in shown.stdout


# --- storing and serving ------------------------------------------------------------------------


def test_an_image_goes_to_the_bucket_and_comes_back_through_a_presigned_url(s3, s3_endpoint, auth_client, user):
    data = png("teal", (40, 30))
    run = make_run(user)
    image = add_image(run.generations.get(position=0), data)
    assert image.file in keys(s3)
    assert stored_bytes(s3, image.file) == data

    fetched = follow(auth_client, f"/images/{image.sha256}", s3_endpoint)
    assert fetched.status_code == 200 and fetched.content == data
    assert fetched.headers["Content-Type"] == "image/png"
    assert fetched.headers["Content-Disposition"] == f'inline; filename="{image.sha256[:16]}.png"'

    download = follow(auth_client, f"/images/{image.sha256}?download=1", s3_endpoint)
    assert download.content == data
    assert download.headers["Content-Disposition"] == f'attachment; filename="{image.sha256[:16]}.png"'

    thumbnail = follow(auth_client, f"/images/{image.sha256}/thumbnail", s3_endpoint)
    assert thumbnail.status_code == 200 and thumbnail.headers["Content-Type"] == "image/webp"
    assert thumbnail.content == stored_bytes(s3, image.thumbnail)
    # The lists' small thumbnail, made on its first request, lands in the bucket too.
    small = follow(auth_client, f"/images/{image.sha256}/thumbnail?size=list", s3_endpoint)
    assert small.status_code == 200 and small.headers["Content-Type"] == "image/webp"
    assert small.content == stored_bytes(s3, images.thumbnail_name(image.sha256, "list"))


def test_a_script_with_an_api_token_gets_the_presigned_url_too(s3, s3_endpoint, client, user):
    data = png("khaki", (12, 12))
    image = add_image(make_run(user).generations.get(position=0), data)
    token = ApiToken.issue(user, "script")[1]
    response = client.get(f"/images/{image.sha256}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 302 and response["Location"].startswith(s3_endpoint + "/")
    assert token not in response["Location"]
    assert httpx.get(response["Location"]).content == data


def test_the_presigned_url_lives_as_long_as_the_setting_says(s3, s3_endpoint, auth_client, user):
    image = add_image(make_run(user).generations.get(position=0), png("olive"))
    response = auth_client.get(f"/images/{image.sha256}")
    query = dict(parse_qsl(urlsplit(response["Location"]).query))
    assert query["X-Amz-Expires"] == "300"
    assert response["Cache-Control"] == "private, max-age=150"  # a kept redirect still has time left
    assert image.sha256 in response["Location"]  # the key is the content hash, nothing else


def test_a_presigned_url_expires(s3, s3_endpoint, auth_client, user):
    data = png("maroon")
    image = add_image(make_run(user).generations.get(position=0), data)
    # Five seconds: with one, a busy machine (the whole suite on every core) let the URL
    # expire before its first fetch.
    url = storage.presigned_url(image.file, "image/png", seconds=5)
    assert url is not None
    assert httpx.get(url).content == data  # fetched at once: the bytes
    deadline = time.monotonic() + 20
    while (answer := httpx.get(url)).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.25)
    assert answer.status_code == 403 and b"Request has expired" in answer.content
    assert answer.content != data


def test_a_presigned_url_opens_only_its_own_object(s3, s3_endpoint, auth_client, user):
    first = add_image(make_run(user).generations.get(position=0), png("navy"))
    second = add_image(make_run(user).generations.get(position=0), png("gold"))
    url = auth_client.get(f"/images/{first.sha256}")["Location"]
    forged = url.replace(first.file, second.file)
    assert forged != url
    answer = httpx.get(forged)
    assert answer.status_code == 403 and b"SignatureDoesNotMatch" in answer.content


def test_logged_out_viewers_get_the_login_page_and_no_url(s3, s3_endpoint, client, user):
    run = make_run(user, blind=True)
    image = add_image(run.generations.get(position=0), png("plum"))
    ref = new_run(user, references=[png("coral", (20, 20))]).references.get()
    for url in [
        f"/images/{image.sha256}",
        f"/images/{image.sha256}/thumbnail",
        f"/images/{image.sha256}?download=1",
        f"/references/{ref.pk}",
        f"/references/{ref.pk}/thumbnail",
        f"/runs/{run.pk}/sides/A/1",
    ]:
        response = client.get(url)
        assert response.status_code == 302, url
        location = response["Location"]
        assert location.startswith("/login"), (url, location)
        assert s3_endpoint not in location and "X-Amz" not in location and "Signature" not in location
    bearer = client.get(f"/images/{image.sha256}", headers={"Authorization": "Bearer not-a-token"})
    assert bearer.status_code == 302 and bearer["Location"].startswith("/login")


def test_reference_images_are_stored_and_served_from_the_bucket(s3, s3_endpoint, auth_client, user):
    run = new_run(user, references=[png("coral", (24, 20))])
    ref = Reference.objects.get(run=run)
    assert ref.file in keys(s3)
    fetched = follow(auth_client, f"/references/{ref.pk}", s3_endpoint)
    assert fetched.content == stored_bytes(s3, ref.file) and fetched.headers["Content-Type"] == ref.mime_type
    thumb = follow(auth_client, f"/references/{ref.pk}/thumbnail", s3_endpoint)
    assert thumb.headers["Content-Type"] == "image/webp" and thumb.content == stored_bytes(s3, ref.thumbnail)


def test_a_blind_viewer_gets_display_copies_from_the_app_and_no_url_of_an_original(
    s3, s3_endpoint, auth_client, user, other_user
):
    run = make_run(other_user, "a blind poster", blind=True)
    originals = [add_image(run.generations.get(position=p), png(c, (64, 48))) for p, c in [(0, "red"), (1, "blue")]]
    page = auth_client.get(f"/runs/{run.pk}").content.decode()
    for image in originals:
        assert image.sha256 not in page
        response = auth_client.get(f"/images/{image.sha256}")
        assert response.status_code == 404 and not response.has_header("Location")
        assert auth_client.get(f"/images/{image.sha256}/thumbnail").status_code == 404
    assert s3_endpoint not in page and "X-Amz" not in page

    side = auth_client.get(f"/runs/{run.pk}/sides/A/1")
    assert side.status_code == 200 and side["Content-Type"] == "image/png"
    assert not side.has_header("Location")
    copy = b"".join(side.streaming_content) if side.streaming else side.content
    assert copy[:8] == b"\x89PNG\r\n\x1a\n"
    # The copy made for it sits in the bucket under a name that says nothing of the model or the file.
    blind_keys = [k for k in keys(s3) if k.startswith("blind/")]
    assert blind_keys
    for key in blind_keys:
        assert not any(n.lower() in key.lower() for n in NEEDLES)
        assert not any(image.sha256 in key for image in originals)

    Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.BETTER, winner=run.generations.get(position=0))
    fetched = follow(auth_client, f"/images/{originals[0].sha256}", s3_endpoint)
    assert fetched.content == stored_bytes(s3, originals[0].file)


def test_the_zip_export_reads_its_images_back_from_the_bucket(s3, auth_client, user):
    data = {0: png("teal", (32, 32)), 1: png("orange", (32, 32))}
    run = make_run(user)
    for position, picture in data.items():
        add_image(run.generations.get(position=position), picture)
    response = auth_client.get(f"/runs/{run.pk}/export.zip")
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    manifest = json.loads(archive.read("run.json"))
    found = [archive.read(img["file"]) for g in manifest["generations"] for img in g["images"]]
    assert sorted(found) == sorted(data.values())
    assert not any(img.get("missing") for g in manifest["generations"] for img in g["images"])


def test_the_checks_runner_reads_images_back_from_the_bucket(s3, user):
    run = make_run(user, models=[GPT])
    gen = run.generations.get()
    sent = {"model": "gpt-image-2", "n": 1, "size": "1536x1024", "output_format": "png", "background": "auto"}
    Generation.objects.filter(pk=gen.pk).update(params_sent=sent)
    gen.images.create(index=0, **images.store(png("white", (1536, 1024))))
    assert runner.check_generation(str(gen.pk)) == Generation.CheckStatus.PASSED
    checks = Generation.objects.get(pk=gen.pk).checks
    size = {item["name"]: item for item in checks["images"][0]["spec"]}["size"]
    assert size["passed"] and size["actual"] == "1536×1024"


def test_a_simulated_run_lands_in_the_bucket_and_is_served_from_it(s3, s3_endpoint, simulator, auth_client):
    run, gens = submit_and_wait(auth_client, "a lighthouse at dusk")
    assert [g.status for g in gens] == [Generation.Status.SUCCEEDED] * 2
    stored = Image.objects.filter(generation__run=run)
    assert stored.count() == 2
    for image in stored:
        assert image.file in keys(s3)
        fetched = follow(auth_client, f"/images/{image.sha256}", s3_endpoint)
        assert hashlib.sha256(fetched.content).hexdigest() == image.sha256
    assert not default_storage.exists("never-written.png")


def test_ensure_bucket_creates_the_bucket_with_the_cors_rule_once(s3_endpoint, settings, monkeypatch):
    bucket = f"compare-{uuid.uuid4().hex[:12]}"
    use_bucket(settings, monkeypatch, s3_endpoint, bucket)
    client = s3_client(s3_endpoint)
    assert bucket not in [b["Name"] for b in client.list_buckets()["Buckets"]]
    out = io.StringIO()
    call_command("ensure_bucket", stdout=out)
    assert out.getvalue() == f"Bucket '{bucket}' created; CORS rule set: GET from any origin.\n"
    assert bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]
    [rule] = client.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert rule["AllowedOrigins"] == ["*"] and sorted(rule["AllowedMethods"]) == ["GET", "HEAD"]
    out = io.StringIO()
    call_command("ensure_bucket", stdout=out)
    assert out.getvalue().startswith(f"Bucket '{bucket}' exists;")
    images.store(png("lime"))  # and the app can write to it
    assert any(key.startswith("images/") for key in keys_of(client, bucket))


def test_ensure_bucket_without_s3_says_files_are_local():
    with pytest.raises(CommandError, match="COMPARE_S3_BUCKET is not set"):
        call_command("ensure_bucket")
