"""Helpers both adapters share: auth headers, Retry-After, key scrubbing (through
compare/redact.py), transport-error mapping, a small SSE reader, fitting the input images
to what the model takes (`fit_inputs`, `check_request_size`), and reading a reply
body without holding it whole: `post_to_file` streams it to a spooled temporary file,
`load_json` parses it leaving long string values (the base64 images) on disk as `Blob`s,
and `decode_b64` decodes such a value from disk in slices."""

import base64
import dataclasses
import io
import json
import math
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from email.utils import parsedate_to_datetime
from typing import IO, Any

import httpx
from PIL import Image as PILImage

from compare.images import pixel_work
from compare.providers.base import ErrorKind, GenerationRequest, InputImage, ProviderError
from compare.redact import redact, shorten_redacted
from compare.registry import Model

MIME_BY_FORMAT = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}


def scrub(text: str, secret: str | None = None) -> str:
    """Remove anything that looks like an API key from text meant for people."""
    return redact(text, [secret])


def refusal(stage: str, found: list[str], **details: Any) -> dict:
    """A safety refusal's where (`stage`: "input" for the prompt or its images, "output"
    for the result, "" unknown) and why (`found`: category names in plain lower-case
    words), worded the same for every provider so that a blind pane can show its
    `summary` without hinting at who refused (every safety refusal has one, however
    little its reply said)."""
    stage = stage if stage in ("input", "output") else ""
    found = list(dict.fromkeys(found))
    where = f" at the {stage} stage" if stage else ""
    why = f": {', '.join(found)}" if found else ""
    return {
        "stage": stage,
        "found": found,
        **details,
        "summary": f"Refused by the provider's safety system{where}{why}.",
    }


def auth_headers(model: Model) -> dict[str, str]:
    key = model.credential()
    if model.auth == "x-goog-api-key":
        return {"x-goog-api-key": key}
    return {"Authorization": f"Bearer {key}"}


def mime_for_format(output_format: str | None, default: str = "image/png") -> str:
    return MIME_BY_FORMAT.get((output_format or "").lower(), default)


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def error_body_text(response: httpx.Response) -> str:
    """A short plain-text hint from an error body that is not the provider's JSON."""
    text = response.text.strip()
    if not text or text.startswith("<"):  # HTML error pages from proxies say nothing useful
        return ""
    return shorten_redacted(text, 200)


def transport_error(exc: httpx.TransportError, vendor: str, model: Model) -> ProviderError:
    detail = shorten_redacted(str(exc), 200, [model.api_key]) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError(
            ErrorKind.TIMEOUT, f"{vendor} did not answer in time for {model.model_id} ({type(exc).__name__})."
        )
    return ProviderError(ErrorKind.NETWORK, f"Could not reach {vendor} for {model.model_id}: {detail}")


def iter_sse(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """Yield (event, data) per server-sent event; tolerant of missing `event:` lines."""
    event = ""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = "", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
    if data:  # a stream whose last event lacks the closing blank line
        yield event, "\n".join(data)


def merge_usage(total: dict, more: dict) -> dict:
    """Add two usage records: numbers add up, nested records merge, and Gemini's
    per-modality lists (`[{"modality": "IMAGE", "tokenCount": n}]`) add per modality."""
    merged = dict(total)
    for key, value in more.items():
        mine = merged.get(key)
        if mine is None or isinstance(mine, bool) or isinstance(value, bool):
            merged[key] = value
        elif isinstance(mine, int | float) and isinstance(value, int | float):
            merged[key] = mine + value
        elif isinstance(mine, dict) and isinstance(value, dict):
            merged[key] = merge_usage(mine, value)
        elif isinstance(mine, list) and isinstance(value, list):
            merged[key] = _merge_modalities(mine, value)
        else:
            merged[key] = value
    return merged


def _merge_modalities(mine: list, more: list) -> list:
    if not all(isinstance(x, dict) and "modality" in x for x in mine + more):
        return mine + more
    by_modality: dict[str, dict] = {}
    for entry in mine + more:
        current = by_modality.get(entry["modality"])
        counts = {k: v for k, v in entry.items() if k != "modality"}
        by_modality[entry["modality"]] = merge_usage(current, counts) if current else dict(entry)
    return list(by_modality.values())


# --- input images -----------------------------------------------------------------------------

_SAVE = {
    "image/png": ("PNG", {"compress_level": 6}),
    "image/jpeg": ("JPEG", {"quality": 95}),
    "image/webp": ("WEBP", {"quality": 95}),
}


def fit_inputs(request: GenerationRequest) -> None:
    """Downscale, in the request, every reference longer than the model's `reference_max_edge`
    to it (same format; the stored original is untouched, so other models get it whole). A mask
    or markup follows the first reference's new size, as it must match it. Only the images that
    need it are decoded, under the pixel-work limit, and once: a retry of the same request finds
    them fitted."""
    edge = request.model.capabilities.reference_max_edge
    if not edge or not request.references:
        return
    fitted = [_fit(ref, edge) for ref in request.references]
    request.references = [image for image, _ in fitted]
    first_size = fitted[0][1]
    if first_size is not None:
        if request.mask is not None:
            request.mask = _resized(request.mask, first_size)
        if request.markup is not None:
            request.markup = _resized(request.markup, first_size)


def _fit(image: InputImage, edge: int) -> tuple[InputImage, tuple[int, int] | None]:
    """(the image, its new size) downscaled to `edge` on its long side, or (it, None) if it fits."""
    with PILImage.open(io.BytesIO(image.data)) as probe:  # reads the header only
        width, height = probe.size
    if max(width, height) <= edge:
        return image, None
    scale = edge / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return _resized(image, size), size


def _resized(image: InputImage, size: tuple[int, int]) -> InputImage:
    fmt, options = _SAVE.get(image.mime_type, _SAVE["image/png"])
    with pixel_work(), PILImage.open(io.BytesIO(image.data)) as opened:
        pixels: PILImage.Image = opened
        if pixels.mode not in {"RGB", "RGBA", "L", "LA"}:
            pixels = pixels.convert("RGBA" if "A" in pixels.getbands() or "transparency" in pixels.info else "RGB")
        out = io.BytesIO()
        pixels.resize(size, PILImage.Resampling.LANCZOS).save(out, fmt, **options)
    return dataclasses.replace(image, data=out.getvalue())


def input_bytes(images: Sequence[InputImage | None], *, base64_encoded: bool) -> int:
    """Bytes these images take in a request body: as they are (multipart) or base64-encoded (JSON)."""
    return sent_bytes([len(image.data) for image in images if image is not None], base64_encoded=base64_encoded)


def sent_bytes(file_sizes: Iterable[int], *, base64_encoded: bool) -> int:
    """Bytes files of these sizes take in a request body; base64 makes each a third larger."""
    return sum(4 * math.ceil(size / 3) if base64_encoded else size for size in file_sizes)


def inline_base64(model: Model) -> bool:
    """Whether the model's requests carry images base64-encoded in JSON (Gemini's inline data)
    rather than as they are (the Images API's multipart edits)."""
    return model.protocol == "gemini"


def over_request_limit(model: Model, body_bytes: int) -> bool:
    """Whether a request body of this many bytes exceeds the model's `max_request_mb` (0: no limit).
    The one rule for the form (compare/inputs.py) and the check just before sending."""
    limit = model.capabilities.max_request_mb
    return bool(limit) and body_bytes > limit * 1_000_000


def check_request_size(model: Model, body_bytes: int) -> None:
    """Refuse, before sending, a request over the model's `max_request_mb`: the provider would
    only answer 400 after the upload. Not retried (a BAD_REQUEST)."""
    limit = model.capabilities.max_request_mb
    if over_request_limit(model, body_bytes):
        raise ProviderError(
            ErrorKind.BAD_REQUEST,
            f"The request would be {body_bytes / 1_000_000:.1f} MB with its reference images, over the "
            f"{limit} MB a request to {model.model_id} may carry; it was not sent. Use fewer or smaller "
            "reference images.",
        )


# A reply body stays in memory up to this size, and goes to a temporary file beyond it.
SPOOL_BYTES = 256 * 1024
# A JSON string value longer than this stays on disk (in practice only base64 images are).
BLOB_BYTES = 64 * 1024
_CHUNK = 1024 * 1024
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_MARK = "\ue000blob:"  # how a Blob is named in the parsed skeleton (a private-use character)


def spooled() -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)


def post_to_file(client: httpx.Client, url: str, **kwargs: Any) -> tuple[httpx.Response, IO[bytes] | None]:
    """POST and stream a successful reply's body into a spooled temporary file (rewound);
    an error reply is read into the response as usual and the file is None. Transport
    errors propagate as from `client.post`."""
    with client.stream("POST", url, **kwargs) as response:
        if not response.is_success:
            response.read()
            return response, None
        body = spooled()
        try:
            for chunk in response.iter_bytes(_CHUNK):
                body.write(chunk)
        except BaseException:
            body.close()
            raise
    body.seek(0)
    return response, body


class Blob(str):
    """A long JSON string value kept on disk: its raw (still JSON-escaped) text is `file`.
    As a str it is a placeholder, so only `decode_b64` should read it."""

    file: IO[bytes]


def load_json(body: IO[bytes]) -> Any:
    """Parse a JSON body like json.load, except that every string value of an object that
    is longer than BLOB_BYTES and made only of base64 characters comes back as a `Blob`,
    read through the file once and never held whole in memory. Raises ValueError as
    json.load does for text that is not JSON."""
    skeleton = io.BytesIO()
    blobs: list[IO[bytes]] = []
    pieces: list[bytes] = []
    size = 0
    spill: IO[bytes] | None = None
    in_string = False
    carry = b""

    def add(data: bytes) -> None:
        nonlocal size, spill, pieces
        size += len(data)
        if spill is not None:
            spill.write(data)
            return
        pieces.append(data)
        if size > BLOB_BYTES:
            spill = spooled()
            spill.write(b"".join(pieces))
            pieces = []

    def close_string() -> None:
        nonlocal spill, pieces, size
        if spill is not None and _is_base64(spill):
            blobs.append(spill)
            skeleton.write(f"{_MARK}{len(blobs) - 1}".encode() + b'"')
        else:
            if spill is not None:  # long, but not base64: parsed as usual
                spill.seek(0)
                pieces = [spill.read()]
                spill.close()
            skeleton.write(b"".join(pieces) + b'"')
        spill, pieces, size = None, [], 0

    body.seek(0)
    while chunk := body.read(_CHUNK):
        buf, carry, pos = carry + chunk, b"", 0
        while pos < len(buf):
            if not in_string:
                quote = buf.find(b'"', pos)
                if quote < 0:
                    skeleton.write(buf[pos:])
                    break
                skeleton.write(buf[pos : quote + 1])
                pos, in_string = quote + 1, True
                continue
            at = _quote_or_escape(buf, pos)
            if at < 0:
                add(buf[pos:])
                break
            if buf[at : at + 1] == b"\\":
                if at + 1 >= len(buf):  # the escaped character is in the next chunk
                    add(buf[pos:at])
                    carry = buf[at:]
                    break
                add(buf[pos : at + 2])
                pos = at + 2
                continue
            add(buf[pos:at])
            close_string()
            pos, in_string = at + 1, False
    if in_string or carry:
        for blob in blobs:
            blob.close()
        if spill is not None:
            spill.close()
        raise ValueError("The JSON text ends inside a string.")
    return json.loads(skeleton.getvalue(), object_hook=lambda obj: _with_blobs(obj, blobs))


def _quote_or_escape(buf: bytes, pos: int) -> int:
    """Where the next '"' or '\\' in `buf` from `pos` is, or -1. Two byte searches: a
    regular expression took 3 ms over a 1K image's reply, these a few microseconds."""
    quote = buf.find(b'"', pos)
    escape = buf.find(b"\\", pos, quote if quote >= 0 else len(buf))
    return escape if escape >= 0 else quote


def _is_base64(spill: IO[bytes]) -> bool:
    spill.seek(0)
    return all(not text.translate(None, _BASE64_ALPHABET) for text in _unescaped(spill))


def _unescaped(file: IO[bytes]) -> Iterator[bytes]:
    """The raw text of a JSON string in slices, with the one escape base64 may carry
    (`\\/`, for "/") undone, even when a slice ends between the two characters."""
    pending = b""
    while chunk := file.read(_CHUNK):
        text, pending = pending + chunk, b""
        if text.endswith(b"\\"):
            text, pending = text[:-1], b"\\"
        yield text.replace(b"\\/", b"/") if b"\\" in text else text
    if pending:
        yield pending


def _with_blobs(obj: dict, blobs: list[IO[bytes]]) -> dict:
    for key, value in obj.items():
        if isinstance(value, str) and value.startswith("\ue000blob:"):
            blob = Blob(value)
            blob.file = blobs[int(value.removeprefix("\ue000blob:"))]
            obj[key] = blob
    return obj


def decode_b64(value: Any) -> bytes:
    """base64.b64decode(value, validate=True) of a str or a `Blob` (read in slices).
    Raises binascii.Error, TypeError or ValueError as b64decode does."""
    if not isinstance(value, Blob):
        return base64.b64decode(value, validate=True)
    out = io.BytesIO()
    value.file.seek(0)
    tail = b""
    try:
        for text in _unescaped(value.file):
            text = tail + text
            whole = len(text) - len(text) % 4
            out.write(base64.b64decode(text[:whole], validate=True))
            tail = text[whole:]
        if tail:
            out.write(base64.b64decode(tail, validate=True))
    finally:
        value.file.close()
    return out.getvalue()
