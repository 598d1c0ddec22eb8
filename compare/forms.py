"""Forms validate and convert; views apply and save.

RunForm is the one validation path for a new comparison: the web form, the JSON
API and the `compare` command all go through it.
"""

import re
from dataclasses import dataclass

from django import forms

from compare import images, sizes
from compare.judging.forms import parse_tags
from compare.models import Image, Run
from compare.registry import ALL_ASPECTS, IMAGE_SIZES, Model, enabled_models, get_model

ASPECT_CHOICES = [("auto", "Auto")] + [(a, a) for a in ALL_ASPECTS]
RESOLUTION_CHOICES = [(r, r) for r in IMAGE_SIZES]
QUALITY_CHOICES = [("auto", "Auto"), ("low", "Low"), ("medium", "Medium"), ("high", "High")]
FORMAT_CHOICES = [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WebP")]
BACKGROUND_CHOICES = [("auto", "Auto"), ("opaque", "Opaque"), ("transparent", "Transparent")]
MODERATION_CHOICES = [("auto", "Standard"), ("low", "Less strict")]
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
    "regenerate",
]
OPTION_LABELS = {
    "quality": "quality",
    "output_format": "output format",
    "background": "background",
    "partial_images": "streamed previews",
    "grounding": "Google Search grounding",
}


SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class InputFile:
    """A verified, re-encoded reference or mask, ready to be stored."""

    name: str
    data: bytes
    info: images.ImageInfo
    source_image: Image | None = None


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/png,image/jpeg,image/webp"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, list | tuple) else [data] if data else []
        return [super(MultipleFileField, self).clean(f, initial) for f in files]


def model_choices() -> list[tuple[str, str]]:
    return [(m.key, m.label) for m in enabled_models()]


def ignored_options(models: list[Model], options: dict) -> list[str]:
    """Plain sentences naming which chosen option each model will not honour."""
    notes = []
    for model in models:
        caps = model.capabilities
        ignored = []
        if options.get("quality", "auto") != "auto" and not caps.qualities:
            ignored.append("quality")
        if options.get("output_format", "png") != "png" and not caps.output_formats:
            ignored.append("output format")
        if options.get("background", "auto") != "auto" and not caps.backgrounds:
            ignored.append("background")
        if options.get("output_compression") not in (None, "") and not caps.output_formats:
            ignored.append("compression")
        if options.get("moderation", "auto") != "auto" and model.protocol != "openai-images":
            ignored.append("the moderation level")
        if int(options.get("partial_images") or 0) and not caps.streaming:
            ignored.append("streamed previews")
        if options.get("grounding") and not caps.grounding:
            ignored.append("Google Search grounding")
        if options.get("mask") and not caps.mask:
            ignored.append("the mask (it edits the whole image)")
        if ignored:
            notes.append(f"{model.label} ignores {', '.join(ignored)}: it decides these itself.")
        if caps.sizes == "aspect":
            aspect, resolution = options.get("aspect_ratio") or "1:1", options.get("resolution") or "1K"
            cfg = sizes.gemini_config(aspect, resolution, options.get("size"), caps)
            if options.get("size"):
                notes.append(
                    f"{model.label} takes an aspect ratio and size class, not pixels: "
                    f"{options['size']} becomes {cfg.get('aspectRatio', 'auto')} at {cfg['imageSize']}."
                )
            elif cfg["imageSize"] != resolution or cfg.get("aspectRatio", "auto") != aspect:
                notes.append(
                    f"{model.label} cannot do {aspect} at {resolution}; it gets "
                    f"{cfg.get('aspectRatio', 'auto')} at {cfg['imageSize']}."
                )
    return notes


class RunForm(forms.Form):
    prompt = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "autofocus": True}), strip=True)
    models = forms.MultipleChoiceField(choices=model_choices, widget=forms.CheckboxSelectMultiple)
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
    references = MultipleFileField(
        required=False,
        label="Reference images",
        help_text="PNG, JPEG or WebP, up to 20 MB each. Drop files here or choose them.",
    )
    fallback_model = forms.ChoiceField(
        required=False,
        label="If a model fails, try",
        help_text="A backup model, run as an extra side labelled as the fallback.",
    )
    fallback_quality = forms.ChoiceField(
        required=False,
        label="…or retry it at",
        choices=[("", "—"), ("low", "Low quality"), ("medium", "Medium quality")],
    )
    regenerate = forms.BooleanField(
        required=False,
        label="Skip the cache",
        help_text="Generate anew even if the same request was answered recently.",
    )
    blind = forms.BooleanField(
        required=False,
        label="Blind",
        help_text="Shuffle the sides and hide the model names until each person has voted.",
    )
    tags = forms.CharField(
        required=False,
        max_length=400,
        label="Tags",
        help_text="e.g. poster ui-mockup zh — to find and compare kinds of work later.",
    )
    parent = forms.UUIDField(required=False, widget=forms.HiddenInput)
    mask = forms.FileField(
        required=False,
        label="Mask (GPT Image)",
        help_text="A PNG with transparency, the size of the first reference: transparent areas get edited.",
        widget=forms.ClearableFileInput(attrs={"accept": "image/png"}),
    )

    def clean_references(self) -> list[InputFile]:
        result, problems = [], []
        for upload in self.cleaned_data.get("references") or []:
            try:
                data, info = images.normalise_upload(upload.read(), upload.name, upload.content_type)
                result.append(InputFile(upload.name[:200], data, info))
            except images.ImageRejected as exc:
                problems.append(str(exc))
        for digest in self.data.getlist("reuse") if hasattr(self.data, "getlist") else self.data.get("reuse") or []:
            image = Image.objects.filter(sha256=digest, is_partial=False).first() if SHA256.match(str(digest)) else None
            if image is None:
                problems.append("A reused image no longer exists.")
                continue
            data = images.open_bytes(image.file)
            # Named without the model: the run it came from may be blind.
            result.append(InputFile("image from an earlier run", data, images.inspect(data), image))
        if problems:
            raise forms.ValidationError(problems)
        return result

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["fallback_model"].choices = [("", "no fallback"), *model_choices()]

    def clean_tags(self) -> list[str]:
        return parse_tags(self.cleaned_data.get("tags", ""))

    def clean_parent(self) -> Run | None:
        parent_id = self.cleaned_data.get("parent")
        if not parent_id:
            return None
        parent = Run.objects.filter(pk=parent_id).first()
        if parent is None:
            raise forms.ValidationError("The comparison this one was forked from no longer exists.")
        return parent

    def clean_mask(self) -> InputFile | None:
        upload = self.cleaned_data.get("mask")
        if not upload:
            return None
        raw = upload.read()
        try:
            original = images.inspect(raw)
        except images.ImageRejected as exc:
            raise forms.ValidationError(f"Mask: {exc}") from None
        if original.format != "png" or not original.has_alpha:
            raise forms.ValidationError("The mask must be a PNG with transparency (alpha 0 marks the area to edit).")
        try:
            data, info = images.normalise_upload(raw, upload.name, upload.content_type)
        except images.ImageRejected as exc:
            raise forms.ValidationError(f"Mask: {exc}") from None
        return InputFile(upload.name[:200], data, info)

    def clean_models(self) -> list[str]:
        keys = list(dict.fromkeys(self.cleaned_data["models"]))
        if len(keys) < 2:
            raise forms.ValidationError("Pick at least two models to compare.")
        unavailable = [get_model(k).label for k in keys if not get_model(k).available]
        if unavailable:
            raise forms.ValidationError(f"Not available right now (no API key): {', '.join(unavailable)}.")
        return keys

    def clean_size(self) -> str:
        raw = self.cleaned_data.get("size", "")
        if not raw:
            return ""
        parsed = sizes.parse_wxh(raw)
        if parsed is None:
            raise forms.ValidationError("Write the size as WIDTHxHEIGHT, e.g. 1536x1024.")
        return f"{parsed[0]}x{parsed[1]}"

    def clean(self) -> dict:
        data = super().clean()
        defaults = {f: self.fields[f].initial for f in OPTION_FIELDS}
        for name, default in defaults.items():
            if data.get(name) in (None, ""):
                data[name] = default if default is not None else ("" if name == "size" else None)
        keys = data.get("models") or []
        chosen = [get_model(k) for k in keys if get_model(k)]
        prompt = data.get("prompt", "")
        if chosen and prompt:
            limit = min(m.capabilities.max_prompt_chars for m in chosen)
            if len(prompt) > limit:
                self.add_error("prompt", f"The prompt is {len(prompt):,} characters; the limit is {limit:,}.")
        if data.get("size") and any(m.capabilities.sizes == "wxh" for m in chosen):
            problem = sizes.openai_size_problem(*sizes.parse_wxh(data["size"]))
            if problem:
                self.add_error("size", problem)
        if chosen and data["n"] > min(m.capabilities.max_images for m in chosen):
            self.add_error("n", f"At most {min(m.capabilities.max_images for m in chosen)} images per model.")
        if data.get("output_compression") not in (None, "") and data["output_format"] == "png":
            self.add_error("output_compression", "Compression applies to JPEG and WebP, not PNG.")
        if data["background"] == "transparent" and data["output_format"] == "jpeg":
            self.add_error("background", "A transparent background needs PNG or WebP output, not JPEG.")
        self._check_inputs(data, chosen)
        self._check_supported(data, chosen)
        fallback = get_model(data.get("fallback_model") or "")
        if fallback is not None and not fallback.available:
            self.add_error("fallback_model", f"{fallback.label} is not available right now (no API key).")
        return data

    def _check_supported(self, data: dict, chosen: list[Model]) -> None:
        """An option no chosen model can honour is an error (the web form never sends
        one: it disables such fields; a script may)."""
        if not chosen:
            return
        needs = {
            "quality": ("auto", lambda m: m.capabilities.qualities),
            "output_format": ("png", lambda m: m.capabilities.output_formats),
            "background": ("auto", lambda m: m.capabilities.backgrounds),
            "partial_images": (0, lambda m: m.capabilities.streaming),
            "grounding": (False, lambda m: m.capabilities.grounding),
        }
        for name, (default, supports) in needs.items():
            if data.get(name) not in (None, "", default) and not any(supports(m) for m in chosen):
                label = (self.fields[name].label or name.replace("_", " ")).lower()
                self.add_error(name, f"None of the chosen models supports {label}.")

    def _check_inputs(self, data: dict, chosen: list[Model]) -> None:
        refs, mask = data.get("references") or [], data.get("mask")
        for model in chosen:
            limit = model.capabilities.max_references
            if len(refs) > limit:
                self.add_error(
                    "references",
                    f"{model.label} takes at most {limit} reference image{'s' if limit != 1 else ''}; "
                    f"you gave {len(refs)}.",
                )
        if mask is None:
            return
        if not refs:
            self.add_error("mask", "A mask applies to the first reference image: add a reference image too.")
        elif (mask.info.width, mask.info.height) != (refs[0].info.width, refs[0].info.height):
            self.add_error(
                "mask",
                f"The mask is {mask.info.width}×{mask.info.height} but the first reference is "
                f"{refs[0].info.width}×{refs[0].info.height}; they must be the same size.",
            )
        if chosen and not any(m.capabilities.mask for m in chosen):
            self.add_error("mask", "None of the chosen models can take a mask.")

    def models_in_data(self) -> list[Model]:
        """The models ticked so far (for previews of a form that is not yet valid)."""
        data = self.data if self.is_bound else {}
        keys = data.getlist("models") if hasattr(data, "getlist") else self.initial.get("models", [])
        return [m for m in (get_model(k) for k in keys) if m]

    def preview_options(self) -> dict:
        """The options as typed so far, each one valid or its default: the preview (notes,
        estimate, hint) must work on a form that is not valid yet, never crash on it."""
        data = self.data if self.is_bound else {}
        options = {}
        for name in OPTION_FIELDS:
            field, raw = self.fields[name], data.get(name)
            if isinstance(field, forms.ChoiceField):
                allowed = {str(key) for key, _ in field.choices}
                options[name] = raw if raw in allowed else field.initial
            elif isinstance(field, forms.IntegerField):
                bounds = (field.min_value or 0, field.max_value if field.max_value is not None else 10**6)
                number = int(raw) if str(raw).isascii() and str(raw).isdigit() else None
                options[name] = number if number is not None and bounds[0] <= number <= bounds[1] else field.initial
            elif name == "size":
                options[name] = raw if sizes.parse_wxh(str(raw or "")) else ""
            else:
                options[name] = raw or field.initial
        options["n"] = options["n"] or 1
        # compare.js reports whether a mask file is picked, so the notes can follow.
        options["mask"] = data.get("has_mask") == "1"
        return options

    def restrict_to(self, chosen: list[Model]) -> None:
        """Offer only what at least one chosen model can honour."""
        supports = {
            "quality": any(m.capabilities.qualities for m in chosen),
            "output_format": any(m.capabilities.output_formats for m in chosen),
            "output_compression": any(m.capabilities.output_formats for m in chosen),
            "background": any(m.capabilities.backgrounds for m in chosen),
            "moderation": any(m.protocol == "openai-images" for m in chosen),
            "partial_images": any(m.capabilities.streaming for m in chosen),
            "grounding": any(m.capabilities.grounding for m in chosen),
            "mask": any(m.capabilities.mask for m in chosen),
        }
        for name, supported in supports.items():
            self.fields[name].disabled = bool(chosen) and not supported

    def options(self) -> dict:
        options = {name: self.cleaned_data[name] for name in OPTION_FIELDS}
        options["references"] = len(self.cleaned_data.get("references") or [])
        options["mask"] = self.cleaned_data.get("mask") is not None
        return options

    def inputs(self) -> tuple[list[InputFile], InputFile | None]:
        return self.cleaned_data.get("references") or [], self.cleaned_data.get("mask")

    def run_fields(self) -> dict:
        """Everything create_run needs besides the author."""
        references, mask = self.inputs()
        return {
            "prompt": self.cleaned_data["prompt"],
            "models": self.chosen_models(),
            "options": self.options(),
            "references": references,
            "mask": mask,
            "blind": self.cleaned_data.get("blind", False),
            "tags": self.cleaned_data.get("tags") or [],
            "parent": self.cleaned_data.get("parent"),
        }

    @classmethod
    def initial_from(cls, run: Run | None, default_models: list[str], blind_default: bool) -> dict:
        """Initial values: a fork starts from its parent's prompt, models and options."""
        if run is None:
            return {"models": default_models, "blind": blind_default}
        initial = {k: v for k, v in run.options.items() if k in OPTION_FIELDS and v is not None}
        return {
            **initial,
            "prompt": run.prompt,
            "models": [g.model_key for g in run.generations.order_by("position")],
            "blind": run.blind,
            "tags": " ".join(t.name for t in run.tags.all()),
            "parent": run.id,
        }

    def chosen_models(self) -> list[Model]:
        return [get_model(k) for k in self.cleaned_data["models"]]
