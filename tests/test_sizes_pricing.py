"""One canonical size choice mapped onto each API, and the cost estimates."""

from decimal import Decimal

import pytest

from compare import pricing, sizes
from compare.registry import registry


def wxh(size: str) -> tuple[int, int]:
    parsed = sizes.parse_wxh(size)
    assert parsed is not None, f"{size} is not WIDTHxHEIGHT"
    return parsed


@pytest.mark.parametrize(
    ("aspect", "resolution", "expected"),
    [
        ("1:1", "1K", "1024x1024"),
        ("3:2", "1K", "1536x1024"),
        ("2:3", "1K", "1024x1536"),
        ("1:1", "2K", "2048x2048"),
        ("16:9", "4K", "3840x2160"),
        ("1:1", "4K", "2880x2880"),
        ("auto", "1K", "auto"),
    ],
)
def test_openai_size_from_aspect_and_resolution(aspect, resolution, expected):
    assert sizes.openai_size(aspect, resolution) == expected


@pytest.mark.parametrize("aspect", ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"])
@pytest.mark.parametrize("resolution", ["1K", "2K", "4K"])
def test_every_canonical_choice_is_a_valid_gpt_image_2_size(aspect, resolution):
    size = sizes.openai_size(aspect, resolution)
    assert sizes.openai_size_problem(*wxh(size)) is None, size


@pytest.mark.parametrize(
    ("size", "problem"),
    [
        ("1000x1000", "multiples of 16"),
        ("4096x4096", "long edge"),
        ("3840x1024", "3:1"),
        ("512x512", "at least"),
    ],
)
def test_invalid_openai_sizes_are_explained(size, problem):
    explained = sizes.openai_size_problem(*wxh(size))
    assert explained is not None and problem in explained


def test_gemini_config_maps_aspect_and_size_class():
    assert sizes.gemini_config("16:9", "2K") == {"aspectRatio": "16:9", "imageSize": "2K"}
    assert sizes.gemini_config("auto", "1K") == {"imageSize": "1K"}
    assert sizes.gemini_config("1:1", "1K", "3840x2160") == {"aspectRatio": "16:9", "imageSize": "4K"}


def test_estimates_use_the_published_per_image_prices():
    gpt, gemini = registry()["gpt-image-2"], registry()["gemini-3-pro-image"]
    one = {"aspect_ratio": "1:1", "resolution": "1K", "n": 1}
    assert pricing.estimate(gpt, {**one, "quality": "high"}) == Decimal("0.2110")
    assert pricing.estimate(gpt, {**one, "quality": "low", "n": 2}) == Decimal("0.0120")
    assert pricing.estimate(gemini, one) == Decimal("0.1340")
    assert pricing.estimate(gemini, {**one, "resolution": "4K", "n": 2}) == Decimal("0.4800")


def test_actual_cost_from_usage_tokens():
    gpt, gemini = registry()["gpt-image-2"], registry()["gemini-3-pro-image"]
    usage = {"input_tokens": 50, "input_tokens_details": {"text_tokens": 50, "image_tokens": 0}, "output_tokens": 1767}
    # 50 × $5/M + 1767 × $30/M
    assert pricing.actual(gpt, usage) == Decimal("0.0533")
    gem_usage = {"promptTokenCount": 10, "candidatesTokenCount": 1120, "thoughtsTokenCount": 100}
    # 10 × $2/M + 1120 × $120/M + 100 × $12/M
    assert pricing.actual(gemini, gem_usage) == Decimal("0.1356")
    assert pricing.actual(gpt, {}) is None


def test_gemini_sizes_snap_to_what_the_model_offers():
    lite = registry()["gemini-3.1-flash-lite-image"]
    assert sizes.gemini_config("16:9", "4K", None, lite.capabilities) == {"aspectRatio": "16:9", "imageSize": "1K"}
    pro = registry()["gemini-3-pro-image"]
    assert sizes.gemini_config("16:9", "4K", None, pro.capabilities) == {"aspectRatio": "16:9", "imageSize": "4K"}
