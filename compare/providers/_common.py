"""Helpers both adapters share: auth headers, Retry-After, key scrubbing (through
compare/redact.py),
transport-error mapping and a small SSE reader."""

import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

import httpx

from compare.providers.base import ErrorKind, ProviderError
from compare.redact import redact, shorten_redacted
from compare.registry import Model

MIME_BY_FORMAT = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}


def scrub(text: str, secret: str | None = None) -> str:
    """Remove anything that looks like an API key from text meant for people."""
    return redact(text, [secret])


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
