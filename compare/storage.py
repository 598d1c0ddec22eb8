"""Where image files live, and how a browser gets them.

By default files are on the local disk (MEDIA_ROOT) and compare/views/files.py streams
them. With COMPARE_S3_BUCKET set, the default storage is django-storages' S3 backend,
on AWS S3 or any S3-compatible server (MinIO, Ceph, Garage, R2 … through
COMPARE_S3_ENDPOINT_URL), so every web process and every worker, on any machine, sees
the same files. Images, thumbnails, reference images and blind display copies keep the
names compare/images.py and compare/judging/blind_images.py give them (`images/ab/<sha256>.png`,
`thumbs/…`, `blind/<one-way hash>.png`): a key never names a model.

The app's image addresses stay the same and keep their rules (login, API token, blind
viewers: compare/views/files.py). Only the last step changes: instead of streaming the
bytes through a web thread, the view answers 302 with a presigned URL of the object that
expires after COMPARE_S3_URL_SECONDS, with the right Content-Type and Content-Disposition
signed into it. The rules run before anything is signed, so a logged-out request gets
the login redirect and never a URL. Blind display copies are still answered by the app
itself: their address names a run's side, not a file.

`s3_settings` turns the environment into the STORAGES entry and the CSP image sources
(compare/settings.py calls it); it imports nothing from Django's settings, so it can run
while they load.
"""

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from django.http import HttpResponseRedirect

DEFAULT_URL_SECONDS = 300
MAX_URL_SECONDS = 7 * 24 * 3600  # the longest a SigV4 presigned URL may live
ADDRESSING_STYLES = {"path", "virtual", "auto"}
# The bytes behind a content-addressed name never change.
OBJECT_CACHE_CONTROL = "private, max-age=31536000, immutable"
# Downloads from S3 are spooled to disk past this size instead of held in memory.
SPOOL_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class S3Settings:
    """What compare/settings.py needs: the storage entry and the origins images come from."""

    storage: dict[str, Any]
    img_sources: list[str] = field(default_factory=list)
    url_seconds: int = DEFAULT_URL_SECONDS


def _origin(url: str, name: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ImproperlyConfigured(f"{name} must be an http:// or https:// URL, got {url!r}.")
    return parts.scheme, parts.netloc


def s3_settings(environ: Mapping[str, str]) -> S3Settings | None:
    """The S3 storage configured by the environment, or None when COMPARE_S3_BUCKET is unset.
    Credentials are not read here: boto3 finds AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    (and AWS_SESSION_TOKEN) in the environment, or an instance role, by itself."""
    bucket = environ.get("COMPARE_S3_BUCKET", "").strip()
    if not bucket:
        return None
    missing = [module for module in ("storages", "boto3") if importlib.util.find_spec(module) is None]
    if missing:
        raise ImproperlyConfigured(
            f"COMPARE_S3_BUCKET is set but {' and '.join(missing)} is not installed: "
            "install the s3 extra (pip install -e '.[s3]')."
        )
    raw_seconds = environ.get("COMPARE_S3_URL_SECONDS", "").strip() or str(DEFAULT_URL_SECONDS)
    try:
        seconds = int(raw_seconds)
    except ValueError:
        raise ImproperlyConfigured(f"COMPARE_S3_URL_SECONDS must be a whole number, got {raw_seconds!r}.") from None
    if not 1 <= seconds <= MAX_URL_SECONDS:
        raise ImproperlyConfigured(f"COMPARE_S3_URL_SECONDS must be between 1 and {MAX_URL_SECONDS}, got {seconds}.")
    endpoint = environ.get("COMPARE_S3_ENDPOINT_URL", "").strip() or None
    region = environ.get("COMPARE_S3_REGION", "").strip() or environ.get("AWS_DEFAULT_REGION", "").strip() or None
    # Servers of one's own (MinIO, Ceph …) are usually addressed by path; AWS by bucket host name.
    style = environ.get("COMPARE_S3_ADDRESSING_STYLE", "").strip() or ("path" if endpoint else "virtual")
    if style not in ADDRESSING_STYLES:
        raise ImproperlyConfigured(f"COMPARE_S3_ADDRESSING_STYLE must be path, virtual or auto, got {style!r}.")
    if endpoint:
        scheme, netloc = _origin(endpoint, "COMPARE_S3_ENDPOINT_URL")
        sources = [f"{scheme}://{netloc}"]
        if style != "path":
            sources.append(f"{scheme}://{bucket}.{netloc}")
    else:
        hosts = [f"{bucket}.s3.amazonaws.com", "s3.amazonaws.com"]
        if region:
            hosts += [f"{bucket}.s3.{region}.amazonaws.com", f"s3.{region}.amazonaws.com"]
        sources = [f"https://{host}" for host in hosts]
    options: dict[str, Any] = {
        "bucket_name": bucket,
        "endpoint_url": endpoint,
        "region_name": region,
        "location": environ.get("COMPARE_S3_PREFIX", "").strip().strip("/"),
        "addressing_style": style,
        "signature_version": "s3v4",
        "querystring_auth": True,
        "querystring_expire": seconds,
        # Names are content addressed: the same name is the same bytes, never a clash.
        "file_overwrite": True,
        "default_acl": None,
        "object_parameters": {"CacheControl": OBJECT_CACHE_CONTROL},
        "max_memory_size": SPOOL_BYTES,
    }
    storage = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}
    return S3Settings(storage=storage, img_sources=sources, url_seconds=seconds)


# The compare stage's difference view reads images back through a canvas, so the browser fetches
# them with CORS; after the app's redirect the request's origin is "null", hence "*". Objects stay
# private: a page elsewhere can only read what a presigned URL already opens.
CORS_RULES = [{"AllowedMethods": ["GET", "HEAD"], "AllowedOrigins": ["*"], "MaxAgeSeconds": 3600}]


def ensure_bucket() -> tuple[bool, str]:
    """Create the configured bucket if it does not exist and give it `CORS_RULES`; whether
    it was created, and what became of the CORS rule (some servers, MinIO among them,
    have no per-bucket CORS and answer every origin anyway)."""
    from botocore.exceptions import ClientError

    s3: Any = default_storage
    client = s3.connection.meta.client
    created = False
    try:
        client.head_bucket(Bucket=s3.bucket_name)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket", "NotFound"}:
            raise
        where = {"CreateBucketConfiguration": {"LocationConstraint": s3.region_name}}
        client.create_bucket(Bucket=s3.bucket_name, **(where if s3.region_name not in {None, "us-east-1"} else {}))
        created = True
    try:
        client.put_bucket_cors(Bucket=s3.bucket_name, CORSConfiguration={"CORSRules": CORS_RULES})
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        return created, f"the server refused a CORS rule ({code}); allow GET from any origin on it if it needs one"
    return created, "CORS rule set: GET from any origin"


def is_remote() -> bool:
    """True when files live on S3 (the default storage is django-storages' S3 backend, or a
    subclass). By class name, so a local install never imports boto3 to find out."""
    return any(
        cls.__name__ == "S3Storage" and cls.__module__ == "storages.backends.s3"
        for cls in default_storage.__class__.__mro__  # the lazy proxy answers with the storage's class
    )


def url_seconds() -> int:
    """How long a presigned URL lives (the storage's own setting, so tests that swap the
    storage need not change a second setting)."""
    return int(getattr(default_storage, "querystring_expire", DEFAULT_URL_SECONDS))


def presigned_url(
    name: str, content_type: str, filename: str | None = None, download: bool = False, seconds: int | None = None
) -> str | None:
    """A short-lived URL that fetches the object `name` straight from the bucket, answered
    with `content_type` and a Content-Disposition (`attachment` when `download`); None
    when files are local. Signing is a local computation: no request goes to the server.
    Callers check who may see the file first (compare/views/files.py)."""
    if not is_remote():
        return None
    disposition = "attachment" if download else "inline"
    if filename:
        disposition += f'; filename="{filename}"'
    parameters = {
        "ResponseContentType": content_type,
        "ResponseContentDisposition": disposition,
        "ResponseCacheControl": OBJECT_CACHE_CONTROL,
    }
    s3: Any = default_storage  # django-storages' S3Storage.url takes these two extra arguments
    return s3.url(name, parameters=parameters, expire=seconds or url_seconds())


def redirect(url: str) -> HttpResponseRedirect:
    """The 302 to a presigned URL. A browser may keep it for half the URL's life, so a
    kept redirect always leads to a URL with time left, and an image shown twice on a page
    (or on the next page) is fetched from the browser's cache, not signed again."""
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = f"private, max-age={max(url_seconds() // 2, 0)}"
    return response
