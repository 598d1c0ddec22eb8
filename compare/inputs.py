"""The images a run starts from: reference images (uploaded, or earlier outputs
reused by their sha256), the mask and the markup overlay, as form fields with their
cleaning, and the checks against what the chosen models can take (how many references,
whether a request with them stays under a model's size limit). Part of RunForm
(compare/forms.py); every upload is verified and re-encoded by compare/images.py.
"""

import re
from dataclasses import dataclass
from typing import Any

from django import forms

from compare import images
from compare.models import Image
from compare.providers._common import inline_base64, over_request_limit, sent_bytes
from compare.registry import Model

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
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/png,image/jpeg,image/webp"}))
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        files = data if isinstance(data, list | tuple) else [data] if data else []
        return [super(MultipleFileField, self).clean(f, initial) for f in files]


class InputsForm(forms.Form):
    """References and mask. `check_inputs` runs from RunForm.clean, once the models are known."""

    references = MultipleFileField(
        required=False,
        label="Reference images",
        help_text="PNG, JPEG or WebP, up to 20 MB each. Drop files here or choose them.",
    )
    mask = forms.FileField(
        required=False,
        label="Mask (GPT Image)",
        help_text="A PNG with transparency, the size of the first reference: transparent areas get edited.",
        widget=forms.ClearableFileInput(attrs={"accept": "image/png"}),
    )
    markup = forms.FileField(
        required=False,
        label="Markup (GPT Image 2.5)",
        help_text="A PNG with transparency, the size of the first reference: what you draw on it guides the edit. "
        "Not together with a mask.",
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
        for digest in self._reused_digests():
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

    def _reused_digests(self) -> list[Any]:
        """`reuse`: sha256 digests of earlier output images (a form list, or a JSON list)."""
        if hasattr(self.data, "getlist"):
            return self.data.getlist("reuse")
        return self.data.get("reuse") or []

    def clean_mask(self) -> InputFile | None:
        return self._overlay("mask", "The mask must be a PNG with transparency (alpha 0 marks the area to edit).")

    def clean_markup(self) -> InputFile | None:
        return self._overlay("markup", "The markup must be a PNG with transparency (drawn over the first reference).")

    def _overlay(self, name: str, not_png: str) -> InputFile | None:
        """A mask or markup: one rule for both, a PNG with an alpha channel, re-encoded."""
        upload = self.cleaned_data.get(name)
        if not upload:
            return None
        raw = upload.read()
        try:
            original = images.inspect(raw)
        except images.ImageRejected as exc:
            raise forms.ValidationError(f"{name.capitalize()}: {exc}") from None
        if original.format != "png" or not original.has_alpha:
            raise forms.ValidationError(not_png)
        try:
            data, info = images.normalise_upload(raw, upload.name, upload.content_type)
        except images.ImageRejected as exc:
            raise forms.ValidationError(f"{name.capitalize()}: {exc}") from None
        return InputFile(upload.name[:200], data, info)

    def check_inputs(self, data: dict[str, Any], chosen: list[Model]) -> None:
        """Errors for inputs the chosen models cannot take, or a mask or markup that does not fit."""
        refs = data.get("references") or []
        for model in chosen:
            if not model.capabilities.supports("references", len(refs)):
                limit = model.capabilities.max_references
                self.add_error(
                    "references",
                    f"{model.label} takes at most {limit} reference image{'s' if limit != 1 else ''}; "
                    f"you gave {len(refs)}.",
                )
            elif too_big := request_too_big(model, refs):
                self.add_error("references", too_big)
        if data.get("mask") is not None and data.get("markup") is not None:
            self.add_error("markup", "Use a mask or a markup, not both: a model takes one or the other.")
        for name, what in (("mask", "A mask"), ("markup", "A markup")):
            overlay = data.get(name)
            if overlay is not None:
                self._check_overlay(name, what, overlay, refs, chosen)

    def _check_overlay(self, name: str, what: str, overlay: InputFile, refs: list[InputFile], chosen: list[Model]):
        if not refs:
            self.add_error(name, f"{what} applies to the first reference image: add a reference image too.")
        elif (overlay.info.width, overlay.info.height) != (refs[0].info.width, refs[0].info.height):
            self.add_error(
                name,
                f"The {name} is {overlay.info.width}×{overlay.info.height} but the first reference is "
                f"{refs[0].info.width}×{refs[0].info.height}; they must be the same size.",
            )
        if chosen and not any(m.capabilities.supports(name, True) for m in chosen):
            self.add_error(name, f"None of the chosen models can take a {name}.")

    def inputs(self) -> tuple[list[InputFile], InputFile | None]:
        """The cleaned references (uploads first, then reused images) and mask."""
        return self.cleaned_data.get("references") or [], self.cleaned_data.get("mask")

    def markup_input(self) -> InputFile | None:
        return self.cleaned_data.get("markup")


def request_too_big(model: Model, refs: list[InputFile]) -> str:
    """Why a request with these references would exceed the model's size limit, or "".

    Counts the references sent as uploaded (those within the model's `reference_max_edge`);
    a downscaled one's size is known only once it is downscaled, just before the request
    (compare/providers/_common.py checks the whole request again there)."""
    caps = model.capabilities
    kept = [
        r for r in refs if not caps.reference_max_edge or max(r.info.width, r.info.height) <= caps.reference_max_edge
    ]
    size = sent_bytes([len(r.data) for r in kept], base64_encoded=inline_base64(model))
    if not over_request_limit(model, size):
        return ""
    return (
        f"{model.label} takes at most {caps.max_request_mb} MB per request, and these reference images come to "
        f"{size / 1_000_000:.1f} MB as sent. Use fewer or smaller images."
    )
