"""The model registry: load, validate, look up.

Model ids die fast, so the registry is a TOML file (compare/models.toml, or the
file named by COMPARE_MODELS_FILE). Invalid configuration raises
ImproperlyConfigured at start with a message that names the entry and field.
"""

import os
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from compare.parsing import parse_whole_number

PROTOCOLS = {"openai-images", "gemini"}
AUTH_STYLES = {"bearer", "x-goog-api-key"}
SIZE_MODES = {"wxh", "aspect"}
ALL_ASPECTS = ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
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


@dataclass(frozen=True)
class Capabilities:
    sizes: str
    aspect_ratios: tuple[str, ...] = tuple(ALL_ASPECTS)
    image_sizes: tuple[str, ...] = tuple(IMAGE_SIZES)
    qualities: tuple[str, ...] = ()
    output_formats: tuple[str, ...] = ()
    backgrounds: tuple[str, ...] = ()
    max_images: int = 1
    max_references: int = 0
    mask: bool = False
    streaming: bool = False
    grounding: bool = False
    max_prompt_chars: int = 32000
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
            case "references":
                return self.max_references >= (1 if value is None else _count(value))
            case "n":
                return value is None or self.max_images >= _count(value)
            case _ if option in ADAPTED:
                return True
        raise ValueError(f"Unknown run option {option!r}.")


def _offers(values: tuple[str, ...], value: object) -> bool:
    return bool(values) if value is None else value in values


def _count(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError(f"A count is an int, not {value!r}.")
    return value


@dataclass(frozen=True)
class Pricing:
    text_input_per_mtok: float = 0.0
    image_input_per_mtok: float = 0.0
    image_output_per_mtok: float = 0.0
    text_output_per_mtok: float = 0.0
    per_image_by_size: dict = field(default_factory=dict)
    per_image_by_image_size: dict = field(default_factory=dict)


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
        ("qualities", {"auto", "low", "medium", "high"}),
        ("output_formats", {"png", "jpeg", "webp"}),
        ("backgrounds", {"auto", "opaque", "transparent"}),
    ]:
        if name in values:
            values[name] = _tuple_of_str(entry, f"capabilities.{name}", values[name], allowed)
    for name in ("max_images", "max_references", "max_prompt_chars"):
        if name in values and (not isinstance(values[name], int) or values[name] < 0):
            raise ImproperlyConfigured(f"Model {entry!r}: capabilities.{name} must be a whole number.")
    if values.get("max_images", 1) < 1:
        raise ImproperlyConfigured(f"Model {entry!r}: capabilities.max_images must be at least 1.")
    return Capabilities(**values, moderation=protocol == "openai-images")


def _pricing(entry: str, raw: dict) -> Pricing:
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
        if not isinstance(row, list) or len(row) != 3:
            raise ImproperlyConfigured(f"Model {entry!r}: pricing for {size} needs [low, medium, high].")
    return Pricing(**raw)


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
            pricing=_pricing(key, raw.get("pricing", {})),
            enabled=bool(raw.get("enabled", True)),
            default=bool(raw.get("default", False)),
            simulated_latency=float(raw.get("simulated_latency", 3.0)),
            rpm=_limit(key, raw, "rpm", "requests per minute"),
            max_in_flight=_limit(key, raw, "max_in_flight", "requests in flight"),
        )
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
    return [m for m in registry().values() if m.enabled]


def default_model_keys() -> list[str]:
    return [m.key for m in enabled_models() if m.default]
