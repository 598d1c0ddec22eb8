"""Estimated cost (before a run, from the registry's published per-image prices)
and actual cost (after, from the usage tokens the provider reports)."""

import math
from decimal import ROUND_HALF_UP, Decimal

from compare import sizes
from compare.registry import Model

QUALITY_COLUMN = {"low": 0, "medium": 1, "high": 2, "auto": 1}
CENT = Decimal("0.0001")


def _money(value: float) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def _prompt_tokens(prompt: str) -> int:
    return max(1, math.ceil(len(prompt) / 4))


def _nearest_size_row(table: dict, width: int, height: int) -> list[float]:
    def distance(key: str) -> float:
        w, h = (int(v) for v in key.split("x"))
        return abs(math.log((w * h) / (width * height))) + abs(math.log((w / h) / (width / height)))

    return table[min(table, key=distance)]


def estimate(model: Model, options: dict, prompt: str = "") -> Decimal | None:
    """Estimated USD for `n` images of this model with these canonical options."""
    pricing = model.pricing
    n = int(options.get("n", 1))
    per_image = None
    if model.protocol == "openai-images" and pricing.per_image_by_size:
        size = sizes.openai_size(
            options.get("aspect_ratio", "1:1"), options.get("resolution", "1K"), options.get("size")
        )
        parsed = sizes.parse_wxh(size) or (1024, 1024)
        row = _nearest_size_row(pricing.per_image_by_size, *parsed)
        per_image = row[QUALITY_COLUMN.get(options.get("quality", "auto"), 1)]
    elif pricing.per_image_by_image_size:
        config = sizes.gemini_config(
            options.get("aspect_ratio", "1:1"), options.get("resolution", "1K"), options.get("size"), model.capabilities
        )
        table = pricing.per_image_by_image_size
        per_image = table.get(config["imageSize"]) or max(table.values())
    if per_image is None:
        return None
    requests = n if model.protocol == "gemini" else 1
    prompt_cost = _prompt_tokens(prompt) * pricing.text_input_per_mtok / 1e6 * requests
    return _money(per_image * n + prompt_cost)


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


def actual(model: Model, usage: dict) -> Decimal | None:
    """Actual USD from the provider's usage numbers; None when the reply gave none."""
    if not usage:
        return None
    value = _openai_actual(model, usage) if model.protocol == "openai-images" else _gemini_actual(model, usage)
    return None if value is None else _money(value)
