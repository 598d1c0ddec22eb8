"""The suite forms of the browser: a suite's name and description, one case, the import
of a file, and "Run this suite". A case is checked by the rules of compare/suites/io.py,
the same ones an imported file and the admin go through."""

import copy
import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from compare.options import OPTION_FIELDS, ModelsField, OptionsForm, model_choices
from compare.suites import io
from compare.suites.dispatch import MAX_SAMPLES, MIN_SAMPLES, SuiteRunRefused, check_models, check_samples
from compare.suites.models import Suite, SuiteCase
from compare.text import TextField


class SuiteForm(forms.Form):
    name = TextField(max_length=io.MAX_NAME_CHARS)
    description = TextField(
        required=False, max_length=io.MAX_DESCRIPTION_CHARS, widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args: Any, suite: Suite | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.suite = suite

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        others = Suite.objects.filter(name=name)
        if self.suite is not None:
            others = others.exclude(pk=self.suite.pk)
        if others.exists():
            raise ValidationError("A suite with this name exists already; pick another name.")
        return name


def _pairs(field: forms.Field) -> list[tuple[Any, Any]]:
    """A choice field's (value, label) pairs (its choices evaluated once)."""
    return list(getattr(field, "choices", []))


def _option_field(name: str) -> forms.Field:
    """The new-comparison form's field for `name`, optional, with "model default" as its empty value."""
    field = copy.deepcopy(OptionsForm.base_fields[name])
    field.required = False
    field.initial = None
    field.help_text = ""
    if isinstance(field, forms.ChoiceField):
        pairs = _pairs(field)
        values = [(v, label) for v, label in pairs if v != ""]
        empty = next((label for v, label in pairs if v == "" and label != "—"), "model default")  # "no fallback"
        field.choices = [("", empty), *values]
        field.error_messages["invalid_choice"] = f"Must be one of {', '.join(str(v) for v, _ in values)}."
    if isinstance(field, forms.IntegerField):
        field.error_messages["min_value"] = field.error_messages["max_value"] = (
            f"Must be a whole number from {field.min_value} to {field.max_value}."
        )
    return field


def _is_set(value: Any) -> bool:
    return value not in (None, "", False)


class CaseForm(forms.Form):
    title = TextField(required=False, max_length=io.MAX_TITLE_CHARS)
    prompt = TextField(widget=forms.Textarea(attrs={"rows": 4}))
    tags = TextField(required=False, max_length=400, help_text="Words separated by spaces, e.g. poster zh.")
    expectations = TextField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One text per line that the image must show exactly; empty: the prompt's quoted texts.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        for name in OPTION_FIELDS:
            self.fields[name] = _option_field(name)

    @classmethod
    def initial_for(cls, case: SuiteCase) -> dict[str, Any]:
        return {
            "title": case.title,
            "prompt": case.prompt,
            "tags": " ".join(case.tags),
            "expectations": "\n".join(case.expectations),
            **{name: value for name, value in case.options.items() if name in OPTION_FIELDS},
        }

    def option_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in OPTION_FIELDS]

    def text_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ("title", "prompt", "tags", "expectations")]

    def clean_tags(self) -> list[str]:
        try:
            return io.clean_tags((self.cleaned_data.get("tags") or "").split())
        except ValidationError as error:
            raise ValidationError(f"Tags: {error.messages[0]}.") from None

    def clean_expectations(self) -> list[str]:
        try:
            return io.clean_expectations((self.cleaned_data.get("expectations") or "").splitlines())
        except ValidationError as error:
            raise ValidationError(f"Expectations: {error.messages[0]}.") from None

    def clean_prompt(self) -> str:
        try:
            return io.clean_text(self.cleaned_data.get("prompt", ""), required=True, limit=io.prompt_limit())
        except ValidationError as error:
            raise ValidationError(f"The prompt {error.messages[0]}.") from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        raw = {name: data[name] for name in OPTION_FIELDS if name in data and _is_set(data[name])}
        options, problems = io.clean_options(raw)
        for name, problem in problems.items():
            message = problem[0].upper() + problem[1:] if problem[:1].islower() else problem
            self.add_error(name if name in self.fields else None, message.rstrip(".") + ".")
        data["options"] = options
        return data

    def case_data(self) -> io.CaseData:
        data = self.cleaned_data
        return io.CaseData(
            title=data.get("title") or "",
            prompt=data["prompt"],
            tags=data.get("tags") or [],
            expectations=data.get("expectations") or [],
            options=data["options"],
        )


class ImportForm(forms.Form):
    file = forms.FileField(label="Suite file (.json, .yaml or .yml)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def clean_file(self) -> io.SuiteData:
        upload = self.cleaned_data["file"]
        if upload.size is not None and upload.size > io.MAX_FILE_BYTES:
            raise ValidationError(
                f"The file is {upload.size:,} bytes; a suite file may have at most {io.MAX_FILE_BYTES:,}."
            )
        try:
            return io.parse(upload.read(io.MAX_FILE_BYTES + 1), upload.name or "")
        except io.SuiteFileError as error:
            raise ValidationError(error.problems) from None


class ConfirmImportForm(forms.Form):
    """The second step when a suite of the file's name exists: the file travels back as JSON."""

    document = forms.CharField(widget=forms.HiddenInput, max_length=4 * io.MAX_FILE_BYTES, strip=False)
    action = forms.ChoiceField(choices=[("replace", "replace"), ("copy", "copy")])

    def clean_document(self) -> io.SuiteData:
        """Checked again in full: the page's hidden field is as untrusted as the file was."""
        try:
            return io.clean_suite(json.loads(self.cleaned_data["document"]))
        except (ValueError, RecursionError):
            raise ValidationError("The import form was damaged; upload the file again.") from None
        except io.SuiteFileError as error:
            raise ValidationError(error.problems) from None


class RunSuiteForm(forms.Form):
    """The browser's "Run this suite". Models and samples are checked by the rules of
    compare/suites/dispatch.py (`check_models`, `check_samples`), the same ones the API
    and the command line go through, with the same messages."""

    models = ModelsField(choices=model_choices, widget=forms.CheckboxSelectMultiple)
    samples = forms.IntegerField(
        initial=3,
        label="Samples per case",
        help_text=f"How many images each model makes of each case ({MIN_SAMPLES}–{MAX_SAMPLES}).",
        widget=forms.NumberInput(attrs={"min": MIN_SAMPLES, "max": MAX_SAMPLES}),
    )

    def clean_models(self) -> list[str]:
        try:
            return [model.key for model in check_models(self.cleaned_data["models"])]
        except SuiteRunRefused as refused:
            raise ValidationError(refused.message) from None

    def clean_samples(self) -> int:
        try:
            return check_samples(self.cleaned_data["samples"])
        except SuiteRunRefused as refused:
            raise ValidationError(refused.message) from None


def options_in_words(options: dict[str, Any]) -> list[str]:
    """A case's options as the new-comparison form names them: ["Aspect ratio 3:4", "Quality High"]."""
    words = []
    for name in OPTION_FIELDS:
        if name not in options:
            continue
        field = OptionsForm.base_fields[name]
        label = str(field.label or name.replace("_", " ").capitalize())
        value = options[name]
        if isinstance(value, bool):
            shown = "on" if value else "off"
        elif isinstance(field, forms.ChoiceField):
            shown = str({str(k): v for k, v in _pairs(field)}.get(str(value), value))
        else:
            shown = str(value)
        words.append(f"{label} {shown}")
    return words
