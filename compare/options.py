"""The options of a run (size, quality, format, previews, fallback…): their form
fields and cleaning, the preview of a form still being filled in, and what each
chosen model makes of them (the "… ignores …" notes). Part of RunForm
(compare/forms.py). Whether a model takes an option is one rule,
`Capabilities.supports` (compare/registry.py).
"""

from collections.abc import Mapping
from typing import Any

from django import forms

from compare import sizes
from compare.parsing import parse_whole_number
from compare.registry import ALL_ASPECTS, IMAGE_SIZES, Model, get_model, offered_models

ASPECT_CHOICES = [("auto", "Auto")] + [(a, a) for a in ALL_ASPECTS]
RESOLUTION_CHOICES = [(r, r) for r in IMAGE_SIZES]
# xhigh and max: GPT Image 2.5 only; pro: Gemini through an OpenAI-compatible gateway
# (compare/models.gateway-example.toml). A model without them is told "auto" (see the notes).
QUALITY_CHOICES = [
    ("auto", "Auto"),
    ("low", "Low"),
    ("medium", "Medium"),
    ("high", "High"),
    ("xhigh", "Extra high"),
    ("max", "Max"),
    ("pro", "Pro (Gemini via a gateway)"),
]
FORMAT_CHOICES = [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WebP")]
BACKGROUND_CHOICES = [("auto", "Auto"), ("opaque", "Opaque"), ("transparent", "Transparent")]
MODERATION_CHOICES = [("auto", "Standard"), ("low", "Less strict")]
FALLBACK_QUALITY_CHOICES = [("", "—"), ("low", "Low quality"), ("medium", "Medium quality")]

# The options, in the order of the page's option grid; Run.options stores them.
OPTION_FIELDS = [
    "aspect_ratio",
    "resolution",
    "size",
    "quality",
    "output_format",
    "output_compression",
    "background",
    "moderation",
    "n",
    "partial_images",
    "grounding",
    "fallback_model",
    "fallback_quality",
    "fallback_on_text_check",
    "regenerate",
]
# The options some models do not take, as the notes name them when a model ignores one.
# The page greys out each one no chosen model takes; a script that sends one gets an error.
IGNORED_AS = {
    "quality": "quality",
    "output_format": "output format",
    "background": "background",
    "output_compression": "compression",
    "moderation": "the moderation level",
    "partial_images": "streamed previews",
    "grounding": "Google Search grounding",
    "mask": "the mask (it edits the whole image)",  # an input (compare/inputs.py), noted here too
    "markup": "the markup overlay",  # likewise
}

# The options checked against the chosen models here (mask and markup in compare/inputs.py).
SUPPORT_CHECKED = [name for name in IGNORED_AS if name in OPTION_FIELDS]


def model_choices() -> list[tuple[str, str]]:
    """The models a new run may choose: retired ones are not offered (registry.offered_models)."""
    return [(m.key, m.label) for m in offered_models()]


class ModelsField(forms.MultipleChoiceField):
    """The chosen models. A retired model is refused with its date and replacement
    (the API's 400 and the command line say it too), not as an unknown choice."""

    def validate(self, value: Any) -> None:
        for key in value or []:
            model = get_model(key)
            if model is not None and model.enabled and model.retired:
                raise forms.ValidationError(model.retirement_refusal(), code="retired")
        super().validate(value)


def fallback_choices() -> list[tuple[str, str]]:
    return [("", "no fallback"), *model_choices()]


def _is_set(value: Any) -> bool:
    return value not in (None, "")


class OptionsForm(forms.Form):
    """The option fields. `check_options` runs from RunForm.clean, once the models are known."""

    aspect_ratio = forms.ChoiceField(choices=ASPECT_CHOICES, initial="1:1", required=False)
    resolution = forms.ChoiceField(choices=RESOLUTION_CHOICES, initial="1K", required=False)
    size = forms.CharField(
        required=False,
        max_length=20,
        label="Exact size",
        help_text="Optional W×H in pixels, e.g. 1536x1024; overrides aspect and resolution.",
    )
    quality = forms.ChoiceField(choices=QUALITY_CHOICES, initial="auto", required=False)
    output_format = forms.ChoiceField(choices=FORMAT_CHOICES, initial="png", required=False)
    output_compression = forms.IntegerField(
        min_value=0,
        max_value=100,
        required=False,
        label="Compression",
        help_text="JPEG/WebP quality 0–100 (empty = the provider's default, 100).",
    )
    background = forms.ChoiceField(choices=BACKGROUND_CHOICES, initial="auto", required=False)
    moderation = forms.ChoiceField(
        choices=MODERATION_CHOICES,
        initial="auto",
        required=False,
        label="Moderation",
        help_text="OpenAI's moderation level; Gemini applies its own safety settings.",
    )
    n = forms.IntegerField(min_value=1, max_value=4, initial=1, required=False, label="Images per model")
    partial_images = forms.IntegerField(
        min_value=0,
        max_value=3,
        initial=0,
        required=False,
        label="Streamed previews",
        help_text="0–3 partial previews while the image renders (models that stream).",
    )
    grounding = forms.BooleanField(required=False, label="Google Search grounding")
    fallback_model = forms.ChoiceField(
        choices=fallback_choices,
        required=False,
        label="If a model fails, try",
        help_text="A backup model, run as an extra side labelled as the fallback.",
    )
    fallback_quality = forms.ChoiceField(choices=FALLBACK_QUALITY_CHOICES, required=False, label="…or retry it at")
    fallback_on_text_check = forms.BooleanField(
        required=False,
        label="Fall back when the text check fails",
        help_text="Also start the fallback when a side's image misreads a quoted string of the prompt (automatic check).",
    )
    regenerate = forms.BooleanField(
        required=False,
        label="Skip the cache",
        help_text="Generate anew even if the same request was answered recently.",
    )

    def clean_size(self) -> str:
        raw = self.cleaned_data.get("size", "")
        if not raw:
            return ""
        parsed = sizes.parse_wxh(raw)
        if parsed is None:
            raise forms.ValidationError("Write the size as WIDTHxHEIGHT, e.g. 1536x1024.")
        return f"{parsed[0]}x{parsed[1]}"

    def option_default(self, name: str) -> Any:
        """What an option left empty means: the field's initial value ("" for the size)."""
        initial = self.fields[name].initial
        return initial if initial is not None else ("" if name == "size" else None)

    def check_options(self, data: dict[str, Any], chosen: list[Model]) -> None:
        """Fill each empty option with its default, then add errors for combinations that
        cannot work and for options none of the chosen models takes."""
        for name in OPTION_FIELDS:
            if not _is_set(data.get(name)):
                data[name] = self.option_default(name)
        exact = sizes.parse_wxh(data["size"])
        if exact and any(m.capabilities.sizes == "wxh" for m in chosen):
            problem = sizes.openai_size_problem(*exact)
            if problem:
                self.add_error("size", problem)
        if not all(m.capabilities.supports("n", data["n"]) for m in chosen):
            self.add_error("n", f"At most {min(m.capabilities.max_images for m in chosen)} images per model.")
        if _is_set(data["output_compression"]) and data["output_format"] == "png":
            self.add_error("output_compression", "Compression applies to JPEG and WebP, not PNG.")
        if data["background"] == "transparent" and data["output_format"] == "jpeg":
            self.add_error("background", "A transparent background needs PNG or WebP output, not JPEG.")
        self._check_supported(data, chosen)
        fallback = get_model(data["fallback_model"] or "")
        if fallback is not None and not fallback.available:
            self.add_error("fallback_model", f"{fallback.label} is not available right now (no API key).")
        if data["fallback_on_text_check"] and not (data["fallback_model"] or data["fallback_quality"]):
            self.add_error(
                "fallback_on_text_check",
                "Choose a fallback model or a fallback quality first: that is what runs when the text check fails.",
            )

    def _check_supported(self, data: dict[str, Any], chosen: list[Model]) -> None:
        """An option none of the chosen models takes is an error. The page never sends
        one (it greys such fields out: RunForm.restrict_to); a script may."""
        if not chosen:
            return
        for name in SUPPORT_CHECKED:
            value = data.get(name)
            if name in self.errors or not _is_set(value):
                continue
            if not any(m.capabilities.supports(name, value) for m in chosen):
                label = (self.fields[name].label or name.replace("_", " ")).lower()
                self.add_error(name, f"None of the chosen models supports {label}.")

    def preview_options(self) -> dict[str, Any]:
        """The options as they stand, each valid one as cleaned and any other at its
        default: the preview (notes, estimate, hint) works on a form that is not valid
        yet, and never crashes on it. Django keeps each valid field in `cleaned_data`
        even when the form as a whole is invalid."""
        values: Mapping[str, Any] = self.initial
        if self.is_bound:
            self.is_valid()  # cleans the form once
            values = self.cleaned_data
        options = {name: values.get(name) for name in OPTION_FIELDS}
        for name, value in options.items():
            if not _is_set(value):
                options[name] = self.option_default(name)
        # compare.js reports whether a mask or markup file is picked, so the notes can follow.
        options["mask"] = self.data.get("has_mask") == "1"
        options["markup"] = self.data.get("has_markup") == "1"
        options["references"] = parse_whole_number(self.data.get("reference_count"), default=0)
        return options


def ignored_options(models: list[Model], options: dict[str, Any]) -> list[str]:
    """Plain sentences naming which chosen option each model will not honour, and how
    each model's size differs from the one asked."""
    notes = []
    for model in models:
        ignored = [
            words
            for name, words in IGNORED_AS.items()
            if _is_set(options.get(name)) and not model.capabilities.supports(name, options[name])
        ]
        if ignored:
            notes.append(f"{model.label} ignores {', '.join(ignored)}: it decides these itself.")
        if _moderation_dropped(model, options):
            notes.append(f"{model.label} edits reference images with its standard moderation: edits take no level.")
        notes.extend(_size_notes(model, options))
    return notes


def _moderation_dropped(model: Model, options: dict[str, Any]) -> bool:
    """A moderation level that is not sent because the request is an edit (reference images):
    the model takes a level, but not on edits (`Capabilities.sends_moderation`)."""
    caps = model.capabilities
    asked = options.get("moderation") not in (None, "", "auto")
    return asked and bool(options.get("references")) and caps.moderation and not caps.sends_moderation(edit=True)


def _size_notes(model: Model, options: dict[str, Any]) -> list[str]:
    """How this model's size differs from the one chosen (compare/sizes.py words it)."""
    aspect, resolution = options.get("aspect_ratio") or "1:1", options.get("resolution") or "1K"
    note = sizes.size_note(model, aspect, resolution, options.get("size") or None)
    return [note] if note else []
