"""The one place credentials are removed from text.

Provider replies quote keys back ("Incorrect API key provided: sk-abc…"), gateways
echo headers, and URLs carry `key=` parameters. Every provider text on its way to
the database, a page, the API, an export or a log goes through `redact` — always
before it is shortened, so a cut can never leave a key's tail under a pattern's
minimum length (`shorten_redacted` does both in that order).

Two nets: known shapes (OpenAI `sk-`, `sk-proj-`, `sk-svcacct-`, `sk-admin-`;
Google `AIza…`; bearer tokens; `key=`/`api_key=`/`token=` parameters; long opaque
tokens with digits), and the keys configured on this server: any run of 8 or more
characters of a configured key is removed, whatever surrounds it.
"""

import logging
import os
import re
from collections.abc import Iterable

REDACTED = "[redacted]"
# The shortest piece of a configured key that is still treated as the key.
MIN_FRAGMENT = 8

_SHAPES = [
    # OpenAI: sk-…, sk-proj-…, sk-svcacct-…, sk-admin-… (and masked echoes like sk-abc***xyz).
    re.compile(r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-*.]{4,}"),
    re.compile(r"\bsk-[A-Za-z0-9_\-*.]{6,}"),
    # Google API keys (39 characters, but a cut one is still a key), glued to any text.
    re.compile(r"AIza[0-9A-Za-z_\-]{6,}"),
]
# A key glued to the word before it ("…upstreamsk-abc…"): long, and with a digit.
_GLUED_OPENAI = re.compile(r"sk-[A-Za-z0-9_\-*.]{20,}")
# (prefix kept, secret removed)
_PREFIXED = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-.=~+/]{6,}"),
    re.compile(r"(?i)((?:x-goog-api-key|x-api-key|api-key|authorization)\s*[:=]\s*[\"']?)[^\s\"',;&]{6,}"),
    re.compile(r"(?i)((?:api[_-]?)?key=|access_token=|token=)[^&\s\"'<>]+"),
]
# Long opaque tokens (OAuth, JWT, gateway keys). The digit requirement spares long
# CamelCase identifiers such as quota ids ("GenerateRequestsPerDayPerProjectPerModel").
_LONG_TOKEN = re.compile(r"\b[A-Za-z0-9_\-]{40,}(?:\.[A-Za-z0-9_\-]+)*")
_DIGIT = re.compile(r"\d")


def configured_secrets() -> list[str]:
    """The API keys this server holds: every registry entry's key variable."""
    from compare.registry import registry

    names = {model.api_key_env for model in registry().values()}
    return [value for name in sorted(names) if len(value := os.environ.get(name, "").strip()) >= MIN_FRAGMENT]


def _fragment_spans(text: str, secret: str) -> list[tuple[int, int]]:
    """Spans of `text` made of MIN_FRAGMENT or more consecutive characters of `secret`."""
    grams = {secret[i : i + MIN_FRAGMENT] for i in range(len(secret) - MIN_FRAGMENT + 1)}
    spans: list[tuple[int, int]] = []
    for i in range(len(text) - MIN_FRAGMENT + 1):
        if text[i : i + MIN_FRAGMENT] in grams:
            end = i + MIN_FRAGMENT
            if spans and i <= spans[-1][1]:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((i, end))
    return spans


def _without_secret(text: str, secret: str) -> str:
    text = text.replace(secret, REDACTED)
    for start, end in reversed(_fragment_spans(text, secret)):
        text = text[:start] + REDACTED + text[end:]
    return text


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every credential replaced by "[redacted]"."""
    if not text:
        return text
    known = [s for s in (*secrets, *configured_secrets()) if s and len(s) >= MIN_FRAGMENT]
    for secret in sorted(set(known), key=len, reverse=True):
        text = _without_secret(text, secret)
    for pattern in _SHAPES:
        text = pattern.sub(REDACTED, text)
    text = _GLUED_OPENAI.sub(lambda m: REDACTED if _DIGIT.search(m.group(0)) else m.group(0), text)
    for pattern in _PREFIXED:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return _LONG_TOKEN.sub(lambda m: REDACTED if _DIGIT.search(m.group(0)) else m.group(0), text)


def shorten(text: str, limit: int = 300) -> str:
    """Whitespace collapsed, cut to `limit` characters with an ellipsis. Only for text
    that has been redacted already (see shorten_redacted)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def shorten_redacted(text: str, limit: int = 300, secrets: Iterable[str | None] = ()) -> str:
    """Redact first, then shorten: the order that cannot leak a cut key."""
    return shorten(redact(text, secrets), limit)


def redact_json(value):
    """Every string inside a JSON-like value, redacted (attempt logs, echoed params)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_json(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_json(v) for k, v in value.items()}
    return value


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: leave it to logging's own error report
        return
    record.msg, record.args = redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)


def install_log_redaction() -> None:
    """Redact every log record as it is made, so no handler (console, file, a test's
    capture, an error e-mail) ever sees a key. Called once from the app's ready()."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacts", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _redact_record(record)
        return record

    factory.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
