"""Estimated cost (before a run, from the registry's published per-image prices)
and actual cost (after, from the usage tokens the provider reports).

An estimate is a range (`Estimate`): with quality "auto" the provider picks the
quality, so it may render at low or at high, and the price differs about thirtyfold.
`estimate_range` is the one rule; `estimate` is its high end, the number stored on a
Generation and counted by the budget guard (compare/budget.py): a limit must hold
whatever the provider picks.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from compare import sizes
from compare.registry import Model, format_day

CENT = Decimal("0.0001")
# What "auto" may come to: the provider chooses among these (not the premium xhigh / max).
AUTO_RANGE = ("low", "medium", "high")


@dataclass(frozen=True)
class Estimate:
    """USD, from `low` (the cheapest quality the request allows) to `high` (the dearest)."""

    low: Decimal
    high: Decimal

    @property
    def exact(self) -> bool:
        return self.low == self.high

    def __str__(self) -> str:
        """'$0.2110', or '$0.0060–$0.2110' for a range (to the hundredth of a cent, like every cost shown)."""
        return f"${self.high}" if self.exact else f"${self.low}–${self.high}"

    def __add__(self, other: "Estimate") -> "Estimate":
        return Estimate(self.low + other.low, self.high + other.high)


def total(estimates: Iterable["Estimate | None"]) -> Estimate | None:
    """The sum of the known estimates; None when none is known."""
    known = [e for e in estimates if e is not None]
    return sum(known[1:], known[0]) if known else None


def _money(value: float) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def _prompt_tokens(prompt: str) -> int:
    return max(1, math.ceil(len(prompt) / 4))


def _nearest_size(table: dict, width: int, height: int) -> str:
    def distance(key: str) -> float:
        w, h = (int(v) for v in key.split("x"))
        return abs(math.log((w * h) / (width * height))) + abs(math.log((w / h) / (width / height)))

    return min(table, key=distance)


def _openai_per_image(model: Model, options: dict) -> tuple[float, float] | None:
    """The cheapest and dearest price of one image at the run's size and quality."""
    pricing = model.pricing
    size = sizes.openai_size(
        options.get("aspect_ratio", "1:1"), options.get("resolution", "1K"), options.get("size"), model.capabilities
    )
    parsed = sizes.parse_wxh(size) or (1024, 1024)
    prices = pricing.by_quality(_nearest_size(pricing.per_image_by_size, *parsed))
    quality = options.get("quality", "auto")
    if quality in prices:
        return prices[quality], prices[quality]
    picks = [prices[q] for q in AUTO_RANGE if q in prices] or list(prices.values())
    return min(picks), max(picks)


def _gemini_per_image(model: Model, options: dict) -> float | None:
    """One image's price at its image size: the published price, else its output tokens × the token price."""
    pricing = model.pricing
    config = sizes.gemini_config(
        options.get("aspect_ratio", "1:1"), options.get("resolution", "1K"), options.get("size"), model.capabilities
    )
    image_size = config.get("imageSize", "1K")
    if image_size in pricing.per_image_by_image_size:
        return pricing.per_image_by_image_size[image_size]
    tokens = pricing.image_output_tokens_by_image_size.get(image_size)
    if tokens is not None:
        return tokens * pricing.image_output_per_mtok / 1e6
    table = pricing.per_image_by_image_size
    return max(table.values()) if table else None  # an unlisted size: the dearest known, never less


def estimate_range(model: Model, options: dict, prompt: str = "") -> Estimate | None:
    """Estimated USD for `n` images of this model with these canonical options; None
    when the registry has no per-image prices for it."""
    n = int(options.get("n", 1))
    span: tuple[float, float] | None = None
    if model.protocol == "openai-images" and model.pricing.per_image_by_size:
        span = _openai_per_image(model, options)
    elif model.pricing.per_image_by_image_size or model.pricing.image_output_tokens_by_image_size:
        price = _gemini_per_image(model, options)
        span = None if price is None else (price, price)
    if span is None:
        return None
    requests = n if model.protocol == "gemini" else 1
    prompt_cost = _prompt_tokens(prompt) * model.pricing.text_input_per_mtok / 1e6 * requests
    return Estimate(_money(span[0] * n + prompt_cost), _money(span[1] * n + prompt_cost))


def estimate(model: Model, options: dict, prompt: str = "") -> Decimal | None:
    """The high end of `estimate_range`: what a Generation stores and the budget counts."""
    found = estimate_range(model, options, prompt)
    return None if found is None else found.high


def prices_checked(models: Iterable[Model | None]) -> date | None:
    """The oldest day on which these models' prices were checked (what a total is as good as)."""
    days = [m.pricing.prices_checked for m in models if m is not None and m.pricing.prices_checked]
    return min(days) if days else None


def as_of(day: date | None) -> str:
    """'prices as of 29 Nov 2026', or '' when the registry gives no date."""
    return f"prices as of {format_day(day)}" if day else ""


def _openai_actual(model: Model, usage: dict) -> float | None:
    p = model.pricing
    if "output_tokens" not in usage and "input_tokens" not in usage:
        return None
    details = usage.get("input_tokens_details") or {}
    text_in = details.get("text_tokens", usage.get("input_tokens", 0) - details.get("image_tokens", 0))
    image_in = details.get("image_tokens", 0)
    out = usage.get("output_tokens", 0)
    return (text_in * p.text_input_per_mtok + image_in * p.image_input_per_mtok + out * p.image_output_per_mtok) / 1e6


def _gemini_actual(model: Model, usage: dict) -> float | None:
    p = model.pricing
    if "candidatesTokenCount" not in usage and "promptTokenCount" not in usage:
        return None
    by_modality = {d.get("modality"): d.get("tokenCount", 0) for d in usage.get("promptTokensDetails") or []}
    image_in = by_modality.get("IMAGE", 0)
    text_in = usage.get("promptTokenCount", 0) - image_in
    out_details = {d.get("modality"): d.get("tokenCount", 0) for d in usage.get("candidatesTokensDetails") or []}
    image_out = out_details.get("IMAGE", usage.get("candidatesTokenCount", 0))
    text_out = out_details.get("TEXT", 0) + usage.get("thoughtsTokenCount", 0)
    text_out_price = p.text_output_per_mtok or p.text_input_per_mtok
    return (
        text_in * p.text_input_per_mtok
        + image_in * p.image_input_per_mtok
        + image_out * p.image_output_per_mtok
        + text_out * text_out_price
    ) / 1e6


def _has_token_prices(model: Model) -> bool:
    p = model.pricing
    return any((p.text_input_per_mtok, p.image_input_per_mtok, p.image_output_per_mtok, p.text_output_per_mtok))


def actual(model: Model, usage: dict) -> Decimal | None:
    """Actual USD from the provider's usage numbers; None when the reply gave none, or when
    the registry has no token prices for the model (unknown, not free: $0 would pass any limit)."""
    if not usage or not _has_token_prices(model):
        return None
    value = _openai_actual(model, usage) if model.protocol == "openai-images" else _gemini_actual(model, usage)
    return None if value is None else _money(value)
