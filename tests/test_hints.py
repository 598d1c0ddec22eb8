"""The routing hint on the new-comparison form: prompts and options → exact sentences."""

import pytest

from compare.hints import hints
from compare.registry import registry

GPT, NBP = "gpt-image-2", "gemini-3-pro-image"
BOTH = [GPT, NBP]
NBP_WINS = "Nano Banana Pro is likely stronger here: "
GPT_WINS = "GPT Image 2 is likely stronger here: "

CASES = [
    # (id, prompt, options, references, models, expected)
    ("no signal", "a red fox in fresh snow, golden hour", {}, 0, BOTH, []),
    ("product shot is neutral", "product shot of a perfume bottle on marble", {"resolution": "2K"}, 0, BOTH, []),
    (
        "default options say nothing",
        "a cat",
        {"resolution": "1K", "background": "auto", "partial_images": 0, "grounding": False, "size": ""},
        3,
        BOTH,
        [],
    ),
    ("4K resolution", "a mountain lake", {"resolution": "4K"}, 0, BOTH, [NBP_WINS + "4K output."]),
    ("large explicit size", "a mountain lake", {"size": "3840x2160"}, 0, BOTH, [NBP_WINS + "4K output."]),
    ("2560 is not 4K", "a mountain lake", {"size": "2560x1440"}, 0, BOTH, []),
    ("more than 3 references", "put them in one scene", {}, 5, BOTH, [NBP_WINS + "5 reference images."]),
    ("CJK", "a tea shop sign that says 春の抹茶", {}, 0, BOTH, [NBP_WINS + "Chinese/Japanese text."]),
    ("Korean", "a poster reading 안녕하세요", {}, 0, BOTH, [NBP_WINS + "Korean text."]),
    ("Arabic", "a bakery sign with مخبز الحي", {}, 0, BOTH, [NBP_WINS + "Arabic text."]),
    ("Cyrillic", "a vintage poster: Добро пожаловать", {}, 0, BOTH, [NBP_WINS + "Cyrillic text."]),
    ("accented Latin is not a script", "a café sign saying Crème brûlée", {}, 0, BOTH, []),
    (
        "4K and Chinese",
        "海报 with the words 新年快乐",
        {"resolution": "4K"},
        0,
        BOTH,
        [NBP_WINS + "4K output, Chinese/Japanese text."],
    ),
    (
        "long quoted text",
        'a book cover with the title "The Quiet Architecture of Small Northern Towns"',
        {},
        0,
        BOTH,
        [NBP_WINS + "long quoted text."],
    ),
    ("short quoted text", 'a mug that says "hello"', {}, 0, BOTH, []),
    ("UI work", "a dashboard for a fintech app with a sidebar", {}, 0, BOTH, [GPT_WINS + "UI/dashboard work."]),
    (
        "transparent background",
        "a sticker of a cactus",
        {"background": "transparent"},
        0,
        BOTH,
        [GPT_WINS + "transparent background."],
    ),
    (
        "logo on transparent",
        "a minimal logo for a coffee roaster",
        {"background": "transparent"},
        0,
        BOTH,
        [GPT_WINS + "transparent background, logo/icon work."],
    ),
    ("streaming previews", "a lighthouse", {"partial_images": "2"}, 0, BOTH, [GPT_WINS + "streaming previews."]),
    (
        "infographic with grounding",
        "an infographic of coffee statistics",
        {"grounding": True},
        0,
        BOTH,
        [NBP_WINS + "Google Search grounding, infographic/data content."],
    ),
    ("furniture table is no data", "a cat sleeping on a wooden table", {}, 0, BOTH, []),
    (
        "conflict, Gemini ahead",
        "a settings page UI in Japanese: 設定を保存",
        {"resolution": "4K"},
        0,
        BOTH,
        [NBP_WINS + "4K output, Chinese/Japanese text; GPT Image 2 for UI/dashboard work."],
    ),
    (
        "conflict, GPT ahead",
        "an app icon with a bar chart",
        {"background": "transparent"},
        0,
        BOTH,
        [GPT_WINS + "transparent background, logo/icon work; Nano Banana Pro for infographic/data content."],
    ),
    (
        "conflict, even",
        "a dashboard in Arabic: لوحة",
        {"partial_images": 1},
        0,
        BOTH,
        [
            "Each has a strength here: GPT Image 2 for streaming previews, UI/dashboard work; "
            "Nano Banana Pro for Arabic text."
        ],
    ),
    (
        "label follows the chosen order",
        "a dashboard in Arabic: لوحة",
        {"partial_images": 1},
        0,
        [NBP, GPT],
        [
            "Each has a strength here: Nano Banana Pro for Arabic text; "
            "GPT Image 2 for streaming previews, UI/dashboard work."
        ],
    ),
    ("only OpenAI models", "a dashboard in 4K", {"resolution": "4K"}, 0, [GPT, "gpt-image-1.5"], []),
    ("only Gemini models", "新年快乐 poster", {"background": "transparent"}, 0, [NBP, "gemini-nano-banana-2.1"], []),
    ("one model", "a dashboard", {}, 0, [GPT], []),
    ("no models", "a dashboard", {}, 0, [], []),
    (
        "first model of a family speaks for it",
        "a landing page",
        {},
        0,
        ["gpt-image-1.5", NBP, GPT],
        ["GPT Image 1.5 is likely stronger here: UI/dashboard work."],
    ),
    (
        "a 1K-only Gemini model gets no 4K credit",
        "a lake",
        {"resolution": "4K"},
        0,
        [GPT, "gemini-3.1-flash-lite-image"],
        [],
    ),
]


@pytest.mark.parametrize(
    ("prompt", "options", "references", "keys", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_hints(prompt, options, references, keys, expected):
    models = [registry()[key] for key in keys]
    assert hints(prompt, options, models, reference_count=references) == expected


def test_a_hint_never_names_a_model_that_was_not_chosen():
    models = [registry()[GPT], registry()[NBP]]
    [sentence] = hints("a dashboard with 数据", {"resolution": "4K"}, models)
    assert "Nano Banana 2.1" not in sentence and "GPT Image 1.5" not in sentence
