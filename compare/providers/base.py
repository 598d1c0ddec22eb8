"""The types every provider adapter speaks: request, result, error."""

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from compare.redact import redact
from compare.registry import Model


class ErrorKind(StrEnum):
    RATE_LIMIT = "rate_limit"
    OVERLOADED = "overloaded"
    TIMEOUT = "timeout"
    SERVER = "server"
    NETWORK = "network"
    MALFORMED = "malformed"
    BAD_REQUEST = "bad_request"
    AUTH = "auth"
    QUOTA = "quota"
    NOT_FOUND = "not_found"
    REFUSED = "refused"


RETRYABLE = {
    ErrorKind.RATE_LIMIT,
    ErrorKind.OVERLOADED,
    ErrorKind.TIMEOUT,
    ErrorKind.SERVER,
    ErrorKind.NETWORK,
    ErrorKind.MALFORMED,
}

# Ways a call can end after reaching the provider in which it may still have been billed
# (compare/budget.py counts such a call at its estimate).
MAY_BE_BILLED = frozenset({ErrorKind.TIMEOUT, ErrorKind.NETWORK, ErrorKind.MALFORMED})


class ProviderError(Exception):
    """The one error type adapters raise. `kind` decides retry or give up."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        usage: dict | None = None,
        echoed: dict | None = None,
        unknown_share: float | None = None,
    ):
        # Every provider text passes through here on its way to the row, the page and the
        # log: redacted once, before anyone can shorten it.
        message = redact(message)
        super().__init__(message)
        self.kind = ErrorKind(kind)
        self.message = message
        self.retry_after = retry_after
        self.status = status
        # A refused Gemini reply still reports (billed) usage.
        self.usage = usage or {}
        # What the reply said beyond the message, kept on the row's params_echoed: a
        # refusal's where and why ({"refusal": `_common.refusal(...)`}), shown blind-safe.
        self.echoed = echoed or {}
        # The share of the call's estimate that may have been billed with no usage to show it
        # (a stream that failed after it started: 1; one of n Gemini requests timing out:
        # 1/n); None: decided by how the call ended (compare/budget.py `attempt_cost`).
        self.unknown_share = unknown_share

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE

    def __repr__(self) -> str:
        return f"ProviderError({self.kind.value!r}, {self.message!r}, status={self.status})"


@dataclass
class InputImage:
    """A reference image or mask, already verified and re-encoded."""

    data: bytes
    mime_type: str
    filename: str = "image.png"


@dataclass
class GenerationRequest:
    model: Model
    prompt: str
    # Canonical size choice; adapters map it onto their own parameters.
    aspect_ratio: str = "1:1"  # one of registry.ALL_ASPECTS, or "auto"
    resolution: str = "1K"  # 1K | 2K | 4K
    size: str | None = None  # explicit WIDTHxHEIGHT, overrides aspect/resolution
    quality: str = "auto"
    output_format: str = "png"
    output_compression: int | None = None
    background: str = "auto"
    moderation: str = "auto"
    n: int = 1
    references: list[InputImage] = field(default_factory=list)
    mask: InputImage | None = None
    # A transparent PNG overlay on the first reference, guiding the edit (models with `markup`).
    markup: InputImage | None = None
    partial_images: int = 0  # >0: stream that many previews (OpenAI only)
    grounding: bool = False
    # Called with (index, image bytes, mime type) for each streamed preview.
    on_partial: Callable[[int, bytes, str], None] | None = None
    # Seconds this attempt may wait on the network (connect, each read); None = the client's default.
    timeout: float | None = None

    def http_timeout(self):
        """For httpx calls: this attempt's limit, else the shared client's own."""
        import httpx

        return (
            httpx.USE_CLIENT_DEFAULT
            if self.timeout is None
            else httpx.Timeout(self.timeout, connect=min(10.0, self.timeout))
        )


@dataclass
class OutputImage:
    data: bytes
    mime_type: str


@dataclass
class GenerationResult:
    images: list[OutputImage]
    usage: dict = field(default_factory=dict)
    # The parameters as sent on the wire (no prompt, no image bytes).
    sent: dict = field(default_factory=dict)
    # What the provider echoed back about the parameters it really used.
    echoed: dict = field(default_factory=dict)
    text: str = ""
    grounding: dict | None = None
    # As on ProviderError: the share of the estimate billed with no usage to show it.
    unknown_share: float | None = None
