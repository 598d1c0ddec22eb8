"""Forms validate and convert; views apply and save.

RunForm is the one validation path for a new comparison: the web form, the JSON
API (compare/api/schema.py) and the `compare` command all go through it. It is
built from three parts:

- here: the prompt, the models and the run's own fields (blind, tags, fork parent);
- compare/options.py: the generation options (size, quality, format, …);
- compare/inputs.py: the reference images and the mask.
"""

from typing import Any

from django import forms

from compare import sizes
from compare.inputs import InputFile, InputsForm
from compare.judging.forms import parse_tags
from compare.models import Run
from compare.options import ASPECT_CHOICES, IGNORED_AS, OPTION_FIELDS, ModelsField, OptionsForm, model_choices
from compare.registry import Model, format_day, get_model
from compare.text import TextField

__all__ = ["OPTION_FIELDS", "InputFile", "RunForm"]


def _replacement(key: str) -> str:
    """The key a fork picks for a model of its parent: its replacement once it is retired."""
    model = get_model(key)
    return model.replaced_by if model is not None and model.retired and model.replaced_by else key


def replaced_models(run: Run) -> list[str]:
    """What a fork of `run` says about its retired models: "GPT Image 1.5 was retired on …;
    GPT Image 2 is picked instead." (or "… pick another model." without a replacement)."""
    notes = []
    for key in dict.fromkeys(run.generations.values_list("model_key", flat=True)):
        model = get_model(key)
        if model is None or not model.retired or model.retires_on is None:
            continue
        replacement = get_model(model.replaced_by) if model.replaced_by else None
        instead = f"{replacement.label} is picked instead." if replacement else "Pick another model."
        notes.append(f"{model.label} was retired on {format_day(model.retires_on)}; {instead}")
    return notes


class RunForm(OptionsForm, InputsForm):
    prompt = TextField(
        widget=forms.Textarea(attrs={"rows": 4, "autofocus": True}),
        error_messages={"required": "A prompt is required (invisible characters alone do not count)."},
    )
    models = ModelsField(choices=model_choices, widget=forms.CheckboxSelectMultiple)
    blind = forms.BooleanField(
        required=False,
        label="Blind",
        help_text="Shuffle the sides and hide the model names until each person has voted.",
    )
    tags = TextField(
        required=False,
        max_length=400,
        label="Tags",
        help_text="e.g. poster ui-mockup zh — to find and compare kinds of work later.",
    )
    parent = forms.UUIDField(required=False, widget=forms.HiddenInput)

    field_order = ["prompt", "models", *OPTION_FIELDS, "references", "mask", "markup", "blind", "tags", "parent"]

    def clean_models(self) -> list[str]:
        keys = list(dict.fromkeys(self.cleaned_data["models"]))
        if len(keys) < 2:
            raise forms.ValidationError("Pick at least two models to compare.")
        unavailable = [m.label for m in map(get_model, keys) if m and not m.available]
        if unavailable:
            raise forms.ValidationError(f"Not available right now (no API key): {', '.join(unavailable)}.")
        return keys

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

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        chosen = [m for m in map(get_model, data.get("models") or []) if m]
        prompt = data.get("prompt", "")
        if chosen and prompt:
            limit = min(m.capabilities.max_prompt_chars for m in chosen)
            if len(prompt) > limit:
                self.add_error("prompt", f"The prompt is {len(prompt):,} characters; the limit is {limit:,}.")
        self.check_options(data, chosen)
        self.check_inputs(data, chosen)
        return data

    # --- the page, before the form is sent ---------------------------------------

    def models_in_data(self) -> list[Model]:
        """The models ticked so far (for previews of a form that is not yet valid)."""
        data = self.data if self.is_bound else {}
        keys = data.getlist("models") if hasattr(data, "getlist") else self.initial.get("models", [])
        return [m for m in map(get_model, keys) if m]

    def restrict_to(self, chosen: list[Model]) -> None:
        """Offer only what at least one chosen model can honour: the options, and the
        aspect ratios (one chosen already stays; the notes say how each model snaps it)."""
        for name in IGNORED_AS:
            self.fields[name].disabled = bool(chosen) and not any(m.capabilities.supports(name) for m in chosen)
        if chosen:
            field = self.fields["aspect_ratio"]
            assert isinstance(field, forms.ChoiceField)
            current = self["aspect_ratio"].value()
            field.choices = [
                (value, label)
                for value, label in ASPECT_CHOICES
                if value == current or any(sizes.takes_aspect(m.capabilities, value) for m in chosen)
            ]

    # --- a valid form, as create_run takes it --------------------------------------

    def chosen_models(self) -> list[Model]:
        return [m for m in map(get_model, self.cleaned_data["models"]) if m]

    def options(self) -> dict[str, Any]:
        """Run.options: every option, how many references and whether a mask (a markup is
        recorded by create_run, only when there is one)."""
        references, mask = self.inputs()
        return {
            **{name: self.cleaned_data[name] for name in OPTION_FIELDS},
            "references": len(references),
            "mask": mask is not None,
        }

    def run_fields(self) -> dict[str, Any]:
        """Everything create_run needs besides the author."""
        references, mask = self.inputs()
        return {
            "prompt": self.cleaned_data["prompt"],
            "models": self.chosen_models(),
            "options": self.options(),
            "references": references,
            "mask": mask,
            "markup": self.markup_input(),
            "blind": self.cleaned_data.get("blind", False),
            "tags": self.cleaned_data.get("tags") or [],
            "parent": self.cleaned_data.get("parent"),
        }

    @classmethod
    def initial_from(cls, run: Run | None, default_models: list[str], blind_default: bool) -> dict[str, Any]:
        """Initial values: a fork starts from its parent's prompt, models and options; a model
        its provider has retired since is swapped for its replacement (`replaced_models`)."""
        if run is None:
            return {"models": default_models, "blind": blind_default}
        initial = {k: v for k, v in run.options.items() if k in OPTION_FIELDS and v is not None}
        keys = [g.model_key for g in run.generations.order_by("position")]
        return {
            **initial,
            "prompt": run.prompt,
            "models": list(dict.fromkeys(_replacement(key) for key in keys)),
            "blind": run.blind,
            "tags": " ".join(t.name for t in run.tags.all()),
            "parent": run.id,
        }
