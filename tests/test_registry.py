"""The model registry is configuration: a bad file fails at start, clearly."""

from datetime import date

import pytest
from django.core.exceptions import ImproperlyConfigured

from compare.registry import load_registry, registry

GOOD = """
[models.m1]
label = "M1"
protocol = "openai-images"
model_id = "gpt-image-2"
base_url = "https://gateway.example/v1"
api_key_env = "M1_KEY"
[models.m1.capabilities]
sizes = "wxh"
"""


def write(tmp_path, text):
    path = tmp_path / "models.toml"
    path.write_text(text)
    return path


def test_default_registry_has_both_flagships_with_prices():
    gpt, gemini = registry()["gpt-image-2"], registry()["gemini-3-pro-image"]
    assert (gpt.protocol, gpt.model_id, gpt.auth) == ("openai-images", "gpt-image-2", "bearer")
    assert (gemini.protocol, gemini.model_id, gemini.auth) == ("gemini", "gemini-3-pro-image", "x-goog-api-key")
    assert gpt.pricing.per_image_by_size["1024x1024"] == [0.006, 0.053, 0.211]
    assert gemini.pricing.per_image_by_image_size == {"1K": 0.134, "2K": 0.134, "4K": 0.24}
    assert gemini.capabilities.max_references == 14 and gpt.capabilities.max_references == 16


def test_a_model_without_key_uses_the_simulator(settings, monkeypatch):
    settings.COMPARE_SIMULATOR_URL = "http://127.0.0.1:8123/sim"
    model = registry()["gpt-image-2"]
    assert model.simulated and model.endpoint_base() == "http://127.0.0.1:8123/sim/openai/v1"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real")
    assert not model.simulated and model.endpoint_base() == "https://api.openai.com/v1"
    assert model.credential() == "sk-real"


def test_without_key_and_without_simulator_a_model_is_unavailable(settings):
    settings.COMPARE_SIMULATOR_ENABLED = False
    assert not registry()["gemini-3-pro-image"].available


def test_gateway_base_url_and_auth_come_from_configuration(tmp_path):
    gemini_via_gateway = GOOD.replace('protocol = "openai-images"', 'protocol = "gemini"\nauth = "bearer"')
    model = load_registry(write(tmp_path, gemini_via_gateway))["m1"]
    assert (model.protocol, model.auth, model.base_url) == ("gemini", "bearer", "https://gateway.example/v1")
    # Without an explicit auth style, each protocol gets its provider's own.
    assert load_registry(write(tmp_path, GOOD.replace('"openai-images"', '"gemini"')))["m1"].auth == "x-goog-api-key"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not toml [", "not valid TOML"),
        ("[other]\nx = 1\n", "no [models.*] entries"),
        (GOOD.replace('protocol = "openai-images"', 'protocol = "dalle"'), "protocol 'dalle'"),
        (GOOD.replace('api_key_env = "M1_KEY"\n', ""), "missing api_key_env"),
        (GOOD.replace("https://gateway.example/v1", "ftp://x"), "base_url must start with http"),
        (GOOD.replace('sizes = "wxh"', 'sizes = "wxh"\nmax_images = 0'), "max_images must be at least 1"),
        (GOOD.replace('sizes = "wxh"', 'sizes = "wxh"\nqualities = ["ultra"]'), "unknown values ['ultra']"),
        (GOOD.replace('sizes = "wxh"', 'sizes = "wxh"\nteleport = true'), "unknown capabilities"),
        (GOOD + "[models.m1.pricing]\nper_image_by_size = { big = [1, 2, 3] }\n", "'big' is not WIDTHxHEIGHT"),
        (
            GOOD.replace('api_key_env = "M1_KEY"', 'api_key_env = "M1_KEY"\nretires_on = "soon"'),
            "retires_on must be a day",
        ),
        (
            GOOD.replace('api_key_env = "M1_KEY"', 'api_key_env = "M1_KEY"\nretires_on = 2026-12-01T00:00:00Z'),
            "retires_on must be a day",
        ),
        (
            GOOD.replace('api_key_env = "M1_KEY"', 'api_key_env = "M1_KEY"\nreplaced_by = "gpt-image-9"'),
            "replaced_by names 'gpt-image-9', which is not a model in the registry",
        ),
        (GOOD.replace('sizes = "wxh"', 'sizes = "fixed"'), "fixed_sizes lists the sizes"),
        (GOOD.replace('sizes = "wxh"', 'sizes = "fixed"\nfixed_sizes = ["big"]'), "fixed_sizes ['big'] are not"),
        (GOOD.replace('sizes = "wxh"', 'sizes = "wxh"\nfixed_sizes = ["1024x1024"]'), "fixed_sizes lists the sizes"),
        (GOOD.replace('sizes = "wxh"', 'sizes = "wxh"\naspect_ratios = ["2:1"]'), "unknown values ['2:1']"),
    ],
)
def test_invalid_registry_fails_with_a_clear_message(tmp_path, text, message):
    with pytest.raises(ImproperlyConfigured, match=message.replace("[", r"\[").replace("]", r"\]").replace("*", r"\*")):
        load_registry(write(tmp_path, text))


def test_missing_registry_file_names_the_setting(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="COMPARE_MODELS_FILE"):
        load_registry(tmp_path / "nope.toml")


def test_override_file_from_settings(tmp_path, settings):
    settings.COMPARE_MODELS_FILE = write(tmp_path, GOOD)
    registry.cache_clear()
    try:
        assert list(registry()) == ["m1"]
    finally:
        registry.cache_clear()


def test_the_gateway_example_file_is_a_valid_registry():
    from django.conf import settings

    models = load_registry(settings.BASE_DIR / "compare" / "models.gateway-example.toml")
    assert models["gemini-3-pro-image"].auth == "bearer"
    assert models["gpt-image-2"].base_url == "https://litellm.internal.example/v1"


def test_retirement_fields_and_what_a_model_accepts(tmp_path):
    text = (
        GOOD.replace(
            'api_key_env = "M1_KEY"', 'api_key_env = "M1_KEY"\nretires_on = 2026-12-01\nreplaced_by = "m2"'
        ).replace(
            'sizes = "wxh"', 'sizes = "fixed"\nfixed_sizes = ["1024x1024"]\nqualities = ["auto", "xhigh", "max", "pro"]'
        )
        + GOOD.replace("m1", "m2").replace('sizes = "wxh"', 'sizes = "wxh"\nmarkup = true')
        + GOOD.replace("m1", "m3").replace(
            'api_key_env = "M1_KEY"', 'api_key_env = "M1_KEY"\nretires_on = "2027-01-15"'
        )
    )
    models = load_registry(write(tmp_path, text))
    m1, m2, m3 = models["m1"], models["m2"], models["m3"]
    assert (m1.retires_on, m1.replaced_by) == (date(2026, 12, 1), "m2")
    assert (m2.retires_on, m2.replaced_by) == (None, None)
    assert m3.retires_on == date(2027, 1, 15)  # a quoted day is read too
    assert (m1.capabilities.sizes, m1.capabilities.fixed_sizes) == ("fixed", ("1024x1024",))
    assert m1.capabilities.supports("quality", "max") and m1.capabilities.supports("quality", "pro")
    assert not m1.capabilities.supports("quality", "high")
    assert m2.capabilities.supports("markup") and not m1.capabilities.supports("markup")
    assert m1.capabilities.supports("markup", False)  # no overlay asks nothing


def test_the_new_openai_entries_are_ready_to_enable_with_their_own_capabilities():
    for key in ("gpt-image-2.5-sunburst", "gpt-image-2.5-sunburst-2026-09-08", "gpt-image-2.5-flare"):
        model = registry()[key]
        assert (model.enabled, model.model_id, model.capabilities.sizes) == (False, key, "wxh")
        assert {"xhigh", "max"} <= set(model.capabilities.qualities) and model.capabilities.markup
        assert model.pricing.per_image_by_size == {}  # no published price: no estimate, not a guess
    for key in ("gpt-image-2.6-sunburst", "gpt-image-2.6-flare"):
        caps = registry()[key].capabilities
        assert (caps.sizes, caps.markup) == ("fixed", False) and "xhigh" not in caps.qualities
