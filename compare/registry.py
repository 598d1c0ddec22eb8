"""The model registry: load, validate, look up.

Model ids die fast, so the registry is a TOML file (compare/models.toml, or the
file named by COMPARE_MODELS_FILE). Invalid configuration raises
ImproperlyConfigured at start with a message that names the entry and field.
"""

import os
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from compare.parsing import parse_whole_number

PROTOCOLS = {"openai-images", "gemini"}
AUTH_STYLES = {"bearer", "x-goog-api-key"}
# wxh: any valid WIDTHxHEIGHT (gpt-image-2 rules); fixed: only `fixed_sizes` (plus "auto");
# aspect: aspectRatio + imageSize (Gemini); gemini-wxh: WIDTHxHEIGHT from Gemini's own size
# table, for an OpenAI-compatible gateway serving Gemini. compare/sizes.py maps the canonical
# choice onto each.
SIZE_MODES = {"wxh", "fixed", "aspect", "gemini-wxh"}
# The ten aspect ratios most image models take, and the canonical set the form offers
# (Nano Banana 2.1 adds the four long ones). Each Gemini entry lists its own in the TOML.
COMMON_ASPECTS = ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
ALL_ASPECTS = [*COMMON_ASPECTS, "1:4", "4:1", "1:8", "8:1"]
# "pro" is what an OpenAI-compatible gateway serving Gemini takes as its quality.
QUALITIES = ["auto", "low", "medium", "high", "xhigh", "max", "pro"]
IMAGE_SIZES = ["1K", "2K", "4K"]
SIMULATOR_PATHS = {"openai-images": "/openai/v1", "gemini": "/gemini/v1beta"}


# The value of an option that asks nothing of the model: every model "supports" it.
NEUTRAL: dict[str, object] = {
    "quality": "auto",
    "output_format": "png",
    "background": "auto",
    "moderation": "auto",
    "partial_images": 0,
    "grounding": False,
    "mask": False,
    "references": 0,
    "n": 1,
    "markup": False,
}
# Options every model takes: sizes are adapted to each model (compare/sizes.py), the
# rest are ours, not the provider's.
ADAPTED = {
    "aspect_ratio",
    "resolution",
    "size",
    "fallback_model",
    "fallback_quality",
    "fallback_on_text_check",
    "regenerate",
}

# Capabilities a protocol gives an entry that leaves them out. Gemini takes inline data up to
# 20 MB per request (Google's documented limit for inline files); references go at most
# 2048 px on the long edge, a chosen default (no documented figure): twice the 1K output,
# and it keeps each reference to a few megabytes.
PROTOCOL_CAPABILITIES: dict[str, dict[str, int]] = {"gemini": {"reference_max_edge": 2048, "max_request_mb": 20}}


@dataclass(frozen=True)
class Capabilities:
    sizes: str
    aspect_ratios: tuple[str, ...] = tuple(COMMON_ASPECTS)
    # sizes = "fixed": the only WIDTHxHEIGHT values the model takes ("auto" is always taken too).
    fixed_sizes: tuple[str, ...] = ()
    image_sizes: tuple[str, ...] = tuple(IMAGE_SIZES)
    qualities: tuple[str, ...] = ()
    output_formats: tuple[str, ...] = ()
    backgrounds: tuple[str, ...] = ()
    max_images: int = 1
    max_references: int = 0
    mask: bool = False
    # A transparent PNG overlay drawn on the first image to guide an edit (GPT Image 2.5).
    markup: bool = False
    streaming: bool = False
    grounding: bool = False
    max_prompt_chars: int = 32000
    # `moderation` on /images/edits too, only where the model is documented to take it there
    # (compare/providers/openai_images.py sends it on generations otherwise).
    moderation_on_edits: bool = False
    # References longer than this edge are sent downscaled to it (0 = as uploaded), and a request
    # over max_request_mb megabytes is refused before it is sent (0 = no known limit): see
    # compare/providers/_common.py. PROTOCOL_CAPABILITIES gives Gemini its defaults.
    reference_max_edge: int = 0
    max_request_mb: int = 0
    # Not in the TOML: OpenAI Images has a moderation level and Gemini has not (set from the protocol).
    moderation: bool = False

    def supports(self, option: str, value: object = None) -> bool:
        """Whether the model honours run option `option` at all or, given `value`, that value.

        The one rule behind the form's offered fields and errors, the "ignores …" notes
        (compare/forms.py, compare/options.py) and the fairness ledger
        (compare/judging/fairness.py). A neutral value ("auto", png, 0, off; see
        NEUTRAL) asks nothing, so every model supports it. `references` and `n` take
        a count.
        """
        if value is not None and option in NEUTRAL and value == NEUTRAL[option]:
            return True
        match option:
            case "quality":
                return _offers(self.qualities, value)
            case "output_format":
                return _offers(self.output_formats, value)
            case "background":
                return _offers(self.backgrounds, value)
            case "output_compression":  # a JPEG/WebP quality
                return any(f in self.output_formats for f in ("jpeg", "webp"))
            case "moderation":
                return self.moderation
            case "partial_images":
                return self.streaming
            case "grounding":
                return self.grounding
            case "mask":
                return self.mask
            case "markup":
                return self.markup
            case "references":
                return self.max_references >= (1 if value is None else _count(value))
            case "n":
                return value is None or self.max_images >= _count(value)
            case _ if option in ADAPTED:
                return True
        raise ValueError(f"Unknown run option {option!r}.")

    def sends_moderation(self, edit: bool) -> bool:
        """Whether `moderation` goes on the wire: the Images API takes it on generations, and on
        /images/edits only where the model is documented to (`moderation_on_edits`). The one
        rule for compare/providers/openai_images.py and the form's note (compare/options.py)."""
        return self.moderation and (not edit or self.moderation_on_edits)


def _offers(values: tuple[str, ...], value: object) -> bool:
    return bool(values) if value is None else value in values


def _count(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError(f"A count is an int, not {value!r}.")
    return value


# The columns of a per_image_by_size row given as a list, in order (compare/models.toml).
PRICE_COLUMNS = ("low", "medium", "high", "xhigh", "max", "pro")  # "pro": a gateway serving Gemini


@dataclass(frozen=True)
class Pricing:
    text_input_per_mtok: float = 0.0
    image_input_per_mtok: float = 0.0
    image_output_per_mtok: float = 0.0
    text_output_per_mtok: float = 0.0
    # WIDTHxHEIGHT → [low, medium, high(, xhigh, max)] or {quality = price}.
    per_image_by_size: dict = field(default_factory=dict)
    per_image_by_image_size: dict = field(default_factory=dict)
    # Gemini: image output tokens per image at each image size, priced at image_output_per_mtok
    # where per_image_by_image_size has no price for that size.
    image_output_tokens_by_image_size: dict = field(default_factory=dict)
    # The day these prices were last checked against the provider's price list.
    prices_checked: date | None = None

    def by_quality(self, size: str) -> dict[str, float]:
        """The per-image prices of one per_image_by_size row, by quality."""
        row = self.per_image_by_size[size]
        return dict(zip(PRICE_COLUMNS, row, strict=False)) if isinstance(row, list) else dict(row)


@dataclass(frozen=True)
class Model:
    key: str
    label: str
    vendor: str
    protocol: str
    model_id: str
    base_url: str
    auth: str
    api_key_env: str
    capabilities: Capabilities
    pricing: Pricing
    enabled: bool = True
    default: bool = False
    simulated_latency: float = 3.0
    # Provider limits (compare/limits.py): requests started per minute and requests in flight; None = no limit.
    rpm: int | None = None
    max_in_flight: int | None = None
    # Retries after a timed-out call (each may be billed: a retried 4K image costs twice).
    timeout_retries: int = 1
    # The provider's announced shutdown day, and the registry key to use instead.
    retires_on: date | None = None
    replaced_by: str | None = None

    @property
    def retired(self) -> bool:
        """Shut down by its provider: no longer offered, though old runs still show it."""
        return self.retires_on is not None and today() >= self.retires_on

    def retirement_note(self) -> str:
        """'Retires on 1 Dec 2026 — use GPT Image 2.' before the day, 'Retired on …' from it; '' if none."""
        if self.retires_on is None:
            return ""
        when = f"{'Retired' if self.retired else 'Retires'} on {format_day(self.retires_on)}"
        if not self.replaced_by:
            return f"{when}."
        replacement = get_model(self.replaced_by)
        return f"{when} — use {replacement.label if replacement else self.replaced_by}."

    def retirement_refusal(self) -> str:
        """Why a run may not name this retired model, for the form and the API's 400."""
        replacement = get_model(self.replaced_by) if self.replaced_by else None
        use = f" Use {replacement.label} ({replacement.key}) instead." if replacement else ""
        day = format_day(self.retires_on) if self.retires_on else "an earlier day"
        return f"{self.label} ({self.key}) was retired by {self.vendor or 'its provider'} on {day}.{use}"

    @property
    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    @property
    def simulated(self) -> bool:
        """True when calls go to the built-in simulator instead of the provider."""
        return self.api_key is None and settings.COMPARE_SIMULATOR_ENABLED

    @property
    def available(self) -> bool:
        return self.enabled and (self.api_key is not None or self.simulated)

    def endpoint_base(self) -> str:
        if self.simulated:
            return settings.COMPARE_SIMULATOR_URL.rstrip("/") + SIMULATOR_PATHS[self.protocol]
        return self.base_url.rstrip("/")

    def credential(self) -> str:
        # The simulator accepts any key; a fixed marker keeps real keys out of it.
        return self.api_key or "simulated"


def today() -> date:
    """The local date retirements are judged by (a function, so tests can move the day)."""
    return timezone.localdate()


def format_day(day: date) -> str:
    """1 Dec 2026: unambiguous in every locale."""
    return f"{day.day} {day:%b %Y}"


def _tuple_of_str(entry: str, name: str, value, allowed=None) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ImproperlyConfigured(f"Model {entry!r}: {name} must be a list of strings.")
    if allowed is not None:
        bad = [v for v in value if v not in allowed]
        if bad:
            raise ImproperlyConfigured(f"Model {entry!r}: {name} has unknown values {bad}.")
    return tuple(value)


def _capabilities(entry: str, raw: dict, protocol: str) -> Capabilities:
    if raw.get("sizes") not in SIZE_MODES:
        raise ImproperlyConfigured(f"Model {entry!r}: capabilities.sizes must be one of {sorted(SIZE_MODES)}.")
    known = set(Capabilities.__dataclass_fields__) - {"moderation"}
    unknown = set(raw) - known
    if unknown:
        raise ImproperlyConfigured(f"Model {entry!r}: unknown capabilities {sorted(unknown)}.")
    values = dict(raw)
    for name, allowed in [
        ("aspect_ratios", ALL_ASPECTS),
        ("image_sizes", IMAGE_SIZES),
        ("qualities", QUALITIES),
        ("output_formats", {"png", "jpeg", "webp"}),
        ("backgrounds", {"auto", "opaque", "transparent"}),
    ]:
        if name in values:
            values[name] = _tuple_of_str(entry, f"capabilities.{name}", values[name], allowed)
    if "fixed_sizes" in values:
        values["fixed_sizes"] = _tuple_of_str(entry, "capabilities.fixed_sizes", values["fixed_sizes"])
        bad = [size for size in values["fixed_sizes"] if not _is_wxh(size)]
        if bad:
            raise ImproperlyConfigured(f"Model {entry!r}: capabilities.fixed_sizes {bad} are not WIDTHxHEIGHT.")
    if (raw["sizes"] == "fixed") != bool(values.get("fixed_sizes")):
        raise ImproperlyConfigured(
            f'Model {entry!r}: capabilities.fixed_sizes lists the sizes of a model with sizes = "fixed" (only).'
        )
    for name in ("max_images", "max_references", "max_prompt_chars", "reference_max_edge", "max_request_mb"):
        if name in values and (not isinstance(values[name], int) or values[name] < 0):
            raise ImproperlyConfigured(f"Model {entry!r}: capabilities.{name} must be a whole number.")
    if values.get("max_images", 1) < 1:
        raise ImproperlyConfigured(f"Model {entry!r}: capabilities.max_images must be at least 1.")
    return Capabilities(**{**PROTOCOL_CAPABILITIES.get(protocol, {}), **values}, moderation=protocol == "openai-images")


def _pricing(entry: str, raw: dict, qualities: tuple[str, ...] = ()) -> Pricing:
    unknown = set(raw) - set(Pricing.__dataclass_fields__)
    if unknown:
        raise ImproperlyConfigured(f"Model {entry!r}: unknown pricing fields {sorted(unknown)}.")
    for name in ("text_input_per_mtok", "image_input_per_mtok", "image_output_per_mtok", "text_output_per_mtok"):
        if name in raw and (not isinstance(raw[name], int | float) or raw[name] < 0):
            raise ImproperlyConfigured(f"Model {entry!r}: pricing.{name} must be a number ≥ 0.")
    for size, row in raw.get("per_image_by_size", {}).items():
        parts = size.split("x")
        if len(parts) != 2 or not all(parse_whole_number(p, minimum=1) for p in parts):
            raise ImproperlyConfigured(f"Model {entry!r}: pricing size {size!r} is not WIDTHxHEIGHT.")
        if isinstance(row, list) and len(row) in (3, 5):
            prices = list(row)
        elif isinstance(row, dict) and row and set(row) <= set(PRICE_COLUMNS):
            prices = list(row.values())
        else:
            raise ImproperlyConfigured(
                f"Model {entry!r}: pricing for {size} needs [low, medium, high], [low, medium, high, xhigh, max]"
                " or a table of prices by quality."
            )
        if not all(isinstance(p, int | float) and not isinstance(p, bool) and p >= 0 for p in prices):
            raise ImproperlyConfigured(f"Model {entry!r}: pricing for {size} must be numbers ≥ 0.")
    priced = {q for size in raw.get("per_image_by_size", {}) for q in Pricing(**raw).by_quality(size)}
    unpriced = sorted(set(qualities) - {"auto"} - priced) if raw.get("per_image_by_size") else []
    if unpriced:
        raise ImproperlyConfigured(f"Model {entry!r}: per_image_by_size has no price for quality {unpriced}.")
    for size, tokens in raw.get("image_output_tokens_by_image_size", {}).items():
        if size not in IMAGE_SIZES or isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise ImproperlyConfigured(
                f"Model {entry!r}: image_output_tokens_by_image_size needs an image size ({', '.join(IMAGE_SIZES)})"
                f" = a whole number of tokens, not {size!r} = {tokens!r}."
            )
    if "prices_checked" in raw and (
        not isinstance(raw["prices_checked"], date) or isinstance(raw["prices_checked"], datetime)
    ):
        raise ImproperlyConfigured(
            f"Model {entry!r}: pricing.prices_checked must be a date without quotes, e.g. 2026-11-29."
        )
    return Pricing(**raw)


def _is_wxh(size: str) -> bool:
    parts = size.split("x")
    return len(parts) == 2 and all(parse_whole_number(p, minimum=1) for p in parts)


def _retires_on(entry: str, raw: dict) -> date | None:
    """A TOML date (2026-12-01) or the same as a string; None when the model has no announced end."""
    value = raw.get("retires_on")
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            value = None
    if type(value) is not date:  # a TOML date-time is a datetime, a subclass of date: not a day
        raise ImproperlyConfigured(
            f"Model {entry!r}: retires_on must be a day such as 2026-12-01, not {raw['retires_on']!r}."
        )
    return value


def _check_replacements(models: dict[str, Model]) -> None:
    for model in models.values():
        if model.replaced_by == model.key:
            raise ImproperlyConfigured(f"Model {model.key!r}: replaced_by cannot name the model itself.")
        if model.replaced_by is not None and model.replaced_by not in models:
            raise ImproperlyConfigured(
                f"Model {model.key!r}: replaced_by names {model.replaced_by!r}, which is not a model in the registry."
            )


def _limit(entry: str, raw: dict, name: str, what: str) -> int | None:
    """An optional provider limit: a whole number ≥ 1, or absent for no limit."""
    if name not in raw:
        return None
    value = raw[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(
            f"Model {entry!r}: {name} must be a whole number of {what} of at least 1, not {value!r}"
            " (leave it out for no limit)."
        )
    return value


def _timeout_retries(entry: str, raw: dict) -> int:
    value = raw.get("timeout_retries", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ImproperlyConfigured(f"Model {entry!r}: timeout_retries must be a whole number ≥ 0, not {value!r}.")
    return value


REQUIRED = ("label", "protocol", "model_id", "base_url", "api_key_env", "capabilities")


def parse_registry(data: dict) -> dict[str, Model]:
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        raise ImproperlyConfigured("The model registry has no [models.*] entries.")
    result: dict[str, Model] = {}
    for key, raw in models.items():
        missing = [name for name in REQUIRED if name not in raw]
        if missing:
            raise ImproperlyConfigured(f"Model {key!r} is missing {', '.join(missing)}.")
        if raw["protocol"] not in PROTOCOLS:
            raise ImproperlyConfigured(
                f"Model {key!r}: protocol {raw['protocol']!r} is not one of {sorted(PROTOCOLS)}."
            )
        auth = raw.get("auth", "bearer" if raw["protocol"] == "openai-images" else "x-goog-api-key")
        if auth not in AUTH_STYLES:
            raise ImproperlyConfigured(f"Model {key!r}: auth must be one of {sorted(AUTH_STYLES)}.")
        if not str(raw["base_url"]).startswith(("http://", "https://")):
            raise ImproperlyConfigured(f"Model {key!r}: base_url must start with http:// or https://.")
        known = set(Model.__dataclass_fields__) - {"key"}
        unknown = set(raw) - known
        if unknown:
            raise ImproperlyConfigured(f"Model {key!r}: unknown fields {sorted(unknown)}.")
        result[key] = Model(
            key=key,
            label=str(raw["label"]),
            vendor=str(raw.get("vendor", "")),
            protocol=raw["protocol"],
            model_id=str(raw["model_id"]),
            base_url=str(raw["base_url"]),
            auth=auth,
            api_key_env=str(raw["api_key_env"]),
            capabilities=_capabilities(key, raw["capabilities"], raw["protocol"]),
            pricing=_pricing(key, raw.get("pricing", {}), tuple(raw["capabilities"].get("qualities", ()))),
            enabled=bool(raw.get("enabled", True)),
            default=bool(raw.get("default", False)),
            simulated_latency=float(raw.get("simulated_latency", 3.0)),
            rpm=_limit(key, raw, "rpm", "requests per minute"),
            max_in_flight=_limit(key, raw, "max_in_flight", "requests in flight"),
            timeout_retries=_timeout_retries(key, raw),
            retires_on=_retires_on(key, raw),
            replaced_by=str(raw["replaced_by"]) if raw.get("replaced_by") else None,
        )
    _check_replacements(result)
    return result


def load_registry(path: Path) -> dict[str, Model]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ImproperlyConfigured(f"Model registry file not found: {path.name} (COMPARE_MODELS_FILE).") from None
    except tomllib.TOMLDecodeError as exc:
        raise ImproperlyConfigured(f"Model registry {path.name} is not valid TOML: {exc}") from None
    return parse_registry(data)


@cache
def registry() -> dict[str, Model]:
    return load_registry(settings.COMPARE_MODELS_FILE)


def get_model(key: str) -> Model | None:
    return registry().get(key)


def enabled_models() -> list[Model]:
    """Every model the registry turns on, retired ones included (old runs still name them)."""
    return [m for m in registry().values() if m.enabled]


def offered_models() -> list[Model]:
    """The models a new run may choose: enabled and not retired. Every place that offers
    models (the forms, the API, the command line) asks here."""
    return [m for m in enabled_models() if not m.retired]


def default_model_keys() -> list[str]:
    return [m.key for m in offered_models() if m.default]
