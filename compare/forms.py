"""Forms validate and convert; views apply and save.

RunForm is the one validation path for a new comparison: the web form, the JSON
API and the `compare` command all go through it.
"""

from django import forms

from compare import sizes
from compare.models import Note
from compare.registry import ALL_ASPECTS, IMAGE_SIZES, Model, enabled_models, get_model

ASPECT_CHOICES = [("auto", "Auto")] + [(a, a) for a in ALL_ASPECTS]
RESOLUTION_CHOICES = [(r, r) for r in IMAGE_SIZES]
QUALITY_CHOICES = [("auto", "Auto"), ("low", "Low"), ("medium", "Medium"), ("high", "High")]
FORMAT_CHOICES = [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WebP")]
BACKGROUND_CHOICES = [("auto", "Auto"), ("opaque", "Opaque"), ("transparent", "Transparent")]
OPTION_FIELDS = [
    "aspect_ratio", "resolution", "size", "quality", "output_format", "background", "n", "partial_images", "grounding",
]
OPTION_LABELS = {
    "quality": "quality",
    "output_format": "output format",
    "background": "background",
    "partial_images": "streamed previews",
    "grounding": "Google Search grounding",
}


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
        if int(options.get("partial_images") or 0) and not caps.streaming:
            ignored.append("streamed previews")
        if options.get("grounding") and not caps.grounding:
            ignored.append("Google Search grounding")
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
        required=False, max_length=20, label="Exact size",
        help_text="Optional W×H in pixels, e.g. 1536x1024; overrides aspect and resolution.",
    )
    quality = forms.ChoiceField(choices=QUALITY_CHOICES, initial="auto", required=False)
    output_format = forms.ChoiceField(choices=FORMAT_CHOICES, initial="png", required=False)
    background = forms.ChoiceField(choices=BACKGROUND_CHOICES, initial="auto", required=False)
    n = forms.IntegerField(min_value=1, max_value=4, initial=1, required=False, label="Images per model")
    partial_images = forms.IntegerField(
        min_value=0, max_value=3, initial=0, required=False, label="Streamed previews",
        help_text="0–3 partial previews while the image renders (models that stream).",
    )
    grounding = forms.BooleanField(required=False, label="Google Search grounding")

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
                data[name] = default if default is not None else ""
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
        if data["background"] == "transparent" and data["output_format"] == "jpeg":
            self.add_error("background", "A transparent background needs PNG or WebP output, not JPEG.")
        return data

    def options(self) -> dict:
        return {name: self.cleaned_data[name] for name in OPTION_FIELDS}

    def chosen_models(self) -> list[Model]:
        return [get_model(k) for k in self.cleaned_data["models"]]


class VoteForm(forms.Form):
    choice = forms.CharField(max_length=20)

    def __init__(self, *args, run, **kwargs):
        super().__init__(*args, **kwargs)
        self.run = run

    def clean_choice(self) -> str:
        choice = self.cleaned_data["choice"]
        if choice not in {key for key, _ in self.run.vote_choices()}:
            raise forms.ValidationError("That is not one of this run's choices.")
        return choice


class NoteForm(forms.ModelForm):
    class Meta:
        model = Note
        fields = ["body"]
        widgets = {"body": forms.Textarea(attrs={"rows": 2, "placeholder": "Add a note for the team…"})}
        labels = {"body": "Note"}
        error_messages = {"body": {"required": "A note cannot be empty."}}

    def clean_body(self) -> str:
        body = self.cleaned_data["body"].strip()
        if not body:
            raise forms.ValidationError("A note cannot be empty.")
        if len(body) > 10_000:
            raise forms.ValidationError("A note may be at most 10,000 characters.")
        return body

