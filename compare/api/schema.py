"""The body of `POST /api/runs`: a JSON object with RunForm's fields, read into a
bound RunForm, which then checks the values exactly as for the web form.

This module only checks what JSON adds: the body is an object, every key is a
field, every value has the field's JSON type (derived from the form field's
class, so the API accepts exactly the form's fields), and images are base64.
"""

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.exceptions import ImproperlyConfigured, RequestDataTooBig
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpRequest
from django.utils.datastructures import MultiValueDict

from compare.api.errors import ApiError
from compare.forms import RunForm
from compare.inputs import MultipleFileField


@dataclass(frozen=True)
class JsonType:
    name: str  # as in "Must be a string"
    accepts: Callable[[Any], bool]


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


STRING = JsonType("a string", _is_str)
STRINGS = JsonType("a list of strings", _is_str_list)
BASE64 = JsonType("a base64 string", _is_str)
BASE64_LIST = JsonType("a list of base64 strings", _is_str_list)
# bool is a subclass of int in Python; true is not a number of images.
INTEGER = JsonType("an integer", lambda value: isinstance(value, int) and not isinstance(value, bool))
BOOLEAN = JsonType("a boolean", lambda value: isinstance(value, bool))

# Most specific first: a MultipleFileField is a FileField, a MultipleChoiceField a ChoiceField.
TYPE_OF_FIELD: list[tuple[type[forms.Field], JsonType]] = [
    (MultipleFileField, BASE64_LIST),
    (forms.FileField, BASE64),
    (forms.MultipleChoiceField, STRINGS),
    (forms.BooleanField, BOOLEAN),
    (forms.IntegerField, INTEGER),
    (forms.ChoiceField, STRING),
    (forms.CharField, STRING),  # UUIDField too
]
FILE_FIELDS = ("references", "mask", "markup")
HINTS = {"models": 'Must be a list of model keys, e.g. ["gpt-image-2", "gemini-3-pro-image"].'}


def _json_type(name: str, field: forms.Field) -> JsonType:
    for field_class, json_type in TYPE_OF_FIELD:
        if isinstance(field, field_class):
            return json_type
    raise ImproperlyConfigured(f"RunForm.{name} ({type(field).__name__}) has no JSON type in compare/api/schema.py.")


# Every form field, in the form's order; `reuse` (sha256 of earlier output images) is
# read from the data, not a form field.
_ORDER = {name: index for index, name in enumerate(RunForm.field_order)}
_FORM_FIELDS = sorted(RunForm.base_fields.items(), key=lambda item: _ORDER.get(item[0], len(_ORDER)))
FIELDS: dict[str, JsonType] = {**{name: _json_type(name, field) for name, field in _FORM_FIELDS}, "reuse": STRINGS}
# null means "use the default", except where the form has no default.
REQUIRED = {name for name, field in _FORM_FIELDS if field.required}


def describe(value: Any) -> str:
    """The JSON type of `value`, for messages: "a string", "null", "an object"…"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def read_object(request: HttpRequest) -> dict[str, Any]:
    """The request body as a JSON object."""
    try:
        raw = request.body
    except RequestDataTooBig:
        raise ApiError(413, "The request body is too large.") from None
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"The body is not valid JSON: {exc}.") from None
    except RecursionError:
        raise ApiError(400, "The body is nested too deeply to be a comparison.") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"The body must be a JSON object, not {describe(body)}.")
    return body


def _check_fields(body: dict[str, Any]) -> None:
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise ApiError(
            400,
            f"Unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. Known fields: {', '.join(FIELDS)}.",
            {name: ["Unknown field."] for name in unknown},
        )
    problems = {}
    for name, value in body.items():
        expected = FIELDS[name]
        if expected.accepts(value) or (value is None and name not in REQUIRED):
            continue
        problems[name] = [HINTS.get(name) or f"Must be {expected.name}, not {describe(value)}."]
    if problems:
        raise ApiError(400, f"Wrong type for {', '.join(problems)}.", problems)


def _decode(value: str, label: str) -> SimpleUploadedFile:
    """A base64 string (or a data: URL) as an uploaded file; ValueError if it is not base64."""
    payload = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        return SimpleUploadedFile(label, base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError):
        raise ValueError(f"{label} is not valid base64.") from None


def _decode_files(body: dict[str, Any]) -> MultiValueDict:
    files: MultiValueDict = MultiValueDict()
    problems: dict[str, list[str]] = {}
    for index, value in enumerate(body.get("references") or []):
        try:
            files.appendlist("references", _decode(value, f"references[{index}]"))
        except ValueError as exc:
            problems.setdefault("references", []).append(str(exc))
    for name in ("mask", "markup"):
        if body.get(name):
            try:
                files[name] = _decode(body[name], name)
            except ValueError as exc:
                problems[name] = [str(exc)]
    if problems:
        raise ApiError(400, "Some images could not be decoded.", problems)
    return files


def run_form(request: HttpRequest) -> RunForm:
    """The body as a valid RunForm; a 4xx ApiError naming each problem otherwise."""
    body = read_object(request)
    _check_fields(body)
    # The form reads a missing checkbox as False and a missing field as its default.
    data = {name: value for name, value in body.items() if value is not None and name not in FILE_FIELDS}
    form = RunForm(data, _decode_files(body))
    if not form.is_valid():
        fields = {name: [str(message) for message in messages] for name, messages in form.errors.items()}
        raise ApiError(400, f"The comparison is not valid: check {', '.join(fields)}.", fields)
    return form
