"""Suite files and the one schema of a case: what a suite may hold, validated strictly,
read from JSON or YAML and written back out.

Every path that stores a case goes through the cleaners here: the browser's case form
(compare/suites/forms.py), the admin (compare/admin.py) and the import of a file. The
options of a case are checked with the rules of the new-comparison form
(`OptionsForm` in compare/options.py, `Capabilities.supports` in compare/registry.py).

File format (`GET /suites/<id>/export.json` or `.yaml` writes it; the Import button on
/suites/ reads it; UTF-8, at most 1 MB, YAML is read with `yaml.safe_load` only)::

    name: "Reference: poster, UI mockup, infographic"
    description: The three prompts of the published comparisons.
    version: 3            # optional, informative: the stored version is counted by compare
    cases:
      - title: Chinese sale poster
        prompt: 'A red and gold Chinese New Year sale poster with the headline "新春钜惠 全场 8 折" …'
        tags: [poster, zh]
        options: {aspect_ratio: "3:4", quality: high}
        expectations: ["新春钜惠 全场 8 折"]

- `name` (text, required, at most 120 characters) and `description` (text, optional).
- `cases`: a list of 1–200 cases. Each has a `prompt` (text, required) and optionally a
  `title` (at most 120 characters), `tags` (a list of single words: letters, digits, - or _),
  `options` (below) and `expectations` (a list of at most 20 strings the text check must
  find in the image; empty: the quoted strings of the prompt).
- `options` may set any option of the new-comparison form (`OPTION_FIELDS` in
  compare/options.py: aspect_ratio, resolution, size, quality, output_format,
  output_compression, background, moderation, n, partial_images, grounding,
  fallback_model, fallback_quality, fallback_on_text_check, regenerate) with the values
  that form accepts. An option left out means the model's default. In YAML, quote an aspect ratio
  ("3:4"): unquoted, YAML reads 3:4 as the number 184.
- Any other key, a value of the wrong type, or an option value no enabled model takes is
  refused with a message naming the case and field ("case 3: 'options.quality' must be one
  of auto, low, medium, high"); nothing is imported unless the whole file is valid.
- Reference images per case are not part of the format yet.
"""

import json
from dataclasses import dataclass, field
from typing import Any

import yaml
from django import forms
from django.core.exceptions import ValidationError

from compare import text
from compare.judging.forms import parse_tags
from compare.options import OPTION_FIELDS, SUPPORT_CHECKED, OptionsForm
from compare.registry import enabled_models
from compare.suites.models import CASE_FIELDS

MAX_FILE_BYTES = 1_000_000
MAX_CASES = 200
MAX_TITLE_CHARS = 120
MAX_NAME_CHARS = 120
MAX_DESCRIPTION_CHARS = 5_000
MAX_EXPECTATIONS = 20
MAX_EXPECTATION_CHARS = 500
MAX_TAGS = 20
# More problems than this are summarised: the first ones are what a person fixes first.
MAX_PROBLEMS_SHOWN = 20

SUITE_KEYS = {"name", "description", "version", "cases"}
CASE_KEYS = {"title", "prompt", "tags", "options", "expectations"}
FILE_TYPES = (".json", ".yaml", ".yml")


class SuiteFileError(Exception):
    """A suite file that cannot be imported; `problems` are sentences a person can act on."""

    def __init__(self, problems: list[str]) -> None:
        if len(problems) > MAX_PROBLEMS_SHOWN:
            problems = [*problems[:MAX_PROBLEMS_SHOWN], f"… and {len(problems) - MAX_PROBLEMS_SHOWN} more problems."]
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class CaseData:
    """One validated case, as SuiteCase stores it."""

    prompt: str
    title: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    expectations: list[str] = field(default_factory=list)

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in CASE_FIELDS}


@dataclass
class SuiteData:
    name: str
    description: str
    cases: list[CaseData]


# --- one field at a time: the rules the browser form, the admin and files share -----------


def clean_text(value: object, *, required: bool, limit: int) -> str:
    """Stored text (compare/text.py), not empty when `required`, at most `limit` characters."""
    if not isinstance(value, str):
        raise ValidationError("must be text")
    if len(value) > 2 * limit:  # refused before the character-by-character checks (YAML aliases repeat text cheaply)
        raise ValidationError(f"is {len(value):,} characters; the limit is {limit:,}")
    cleaned = text.clean(value)
    if required and not cleaned:
        raise ValidationError("is required (invisible characters alone do not count)")
    if len(cleaned) > limit:
        raise ValidationError(f"is {len(cleaned):,} characters; the limit is {limit:,}")
    return cleaned


def prompt_limit() -> int:
    """The longest prompt any enabled model takes; a suite run checks each chosen model's own limit."""
    return max((m.capabilities.max_prompt_chars for m in enabled_models()), default=32_000)


def clean_tags(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValidationError("must be a list of words, e.g. [poster, zh]")
    if len(value) > MAX_TAGS:
        raise ValidationError(f"has {len(value)} tags; at most {MAX_TAGS}")
    tags: list[str] = []
    for raw in value:
        try:
            parsed = parse_tags(raw)
        except ValidationError:
            parsed = []
        if len(parsed) != 1:
            raise ValidationError(f"{raw!r} must be one word of letters, digits, - or _")
        tags.append(parsed[0])
    tags = list(dict.fromkeys(tags))
    if len(tags) > MAX_TAGS:
        raise ValidationError(f"has {len(tags)} tags; at most {MAX_TAGS}")
    return tags


def clean_expectations(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
        raise ValidationError('must be a list of strings, e.g. ["Analytics Dashboard"]')
    if len(value) > MAX_EXPECTATIONS:
        raise ValidationError(f"has {len(value)} strings; at most {MAX_EXPECTATIONS}")
    cleaned = [clean_text(e, required=False, limit=MAX_EXPECTATION_CHARS) for e in value]
    cleaned = list(dict.fromkeys(e for e in cleaned if e))
    if len(cleaned) > MAX_EXPECTATIONS:
        raise ValidationError(f"has {len(cleaned)} strings; at most {MAX_EXPECTATIONS}")
    return cleaned


def _kind(option: forms.Field) -> type:
    if isinstance(option, forms.BooleanField):
        return bool
    if isinstance(option, forms.IntegerField):
        return int
    return str


def _values(option: forms.Field) -> list[str]:
    return [str(value) for value, _ in getattr(option, "choices", []) if value != ""]


def _type_problem(name: str, option: forms.Field, value: object) -> str | None:
    kind = _kind(option)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return None
    if kind is not int and isinstance(value, kind):
        return None
    if kind is bool:
        return "must be true or false"
    if kind is int:
        return f"must be a whole number from {option.min_value} to {option.max_value}"  # type: ignore[attr-defined]
    if isinstance(option, forms.ChoiceField):
        hint = ' (YAML reads an unquoted 3:4 as a number: write "3:4")' if name == "aspect_ratio" else ""
        return f"must be one of {', '.join(_values(option))}{hint}"
    return "must be text"


def _form_problem(form: OptionsForm, name: str) -> str:
    option = form.fields[name]
    error = form.errors.as_data()[name][0]
    if isinstance(option, forms.ChoiceField) and error.code == "invalid_choice":
        return f"must be one of {', '.join(_values(option))}"
    if isinstance(option, forms.IntegerField) and error.code in {"min_value", "max_value"}:
        return f"must be a whole number from {option.min_value} to {option.max_value}"
    return str(error.message % error.params if error.params else error.message)


def clean_options(raw: object) -> tuple[dict[str, Any], dict[str, str]]:
    """A case's options checked by the new-comparison form's own rules: each value, the
    combinations that cannot work, and whether at least one enabled model takes it (which
    models a suite runs on is chosen when it runs, and checked again then).

    Returns (options, problems by option name); an option left out is the model's default."""
    if not isinstance(raw, dict):
        return {}, {"": "must be a mapping of option names to values, e.g. {quality: high}"}
    problems: dict[str, str] = {}
    typed: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in OPTION_FIELDS:
            problems[str(name)] = f"is not an option; the options are {', '.join(OPTION_FIELDS)}"
        elif (problem := _type_problem(name, OptionsForm.base_fields[name], value)) is not None:
            problems[name] = problem
        else:
            typed[name] = value
    form = OptionsForm(data=typed)
    form.is_valid()
    if not problems and not form.errors:
        form.check_options(dict(form.cleaned_data), [])
    for name in form.errors:
        problems.setdefault(name, _form_problem(form, name))
    if problems:
        return {}, problems
    # An option switched off is the same as one left out (every switch is off by default).
    options = {name: form.cleaned_data[name] for name in typed if form.cleaned_data[name] is not False}
    models = enabled_models()
    for name in [*SUPPORT_CHECKED, "n"]:
        if name in options and not any(m.capabilities.supports(name, options[name]) for m in models):
            problems[name] = f"{options[name]!r} is not supported by any enabled model"
    return ({}, problems) if problems else (options, {})


# --- a whole case, a whole file --------------------------------------------------------------


def _say(where: str, name: str, problem: str) -> str:
    """A problem as it is shown, e.g. "case 3: 'options.quality' must be …" (a full sentence from
    a form follows a colon)."""
    joiner = " " if problem[:1].islower() else ": "
    return f"{where}: '{name}'{joiner}{problem}"


def clean_case(raw: object, where: str) -> tuple[CaseData | None, list[str]]:
    """One case of a file (or of the admin); `where` names it in messages ("case 3")."""
    if not isinstance(raw, dict):
        return None, [f"{where}: must be a mapping with at least a 'prompt'"]
    problems = [_say(where, str(k), "is not a field of a case") for k in raw if k not in CASE_KEYS]
    values: dict[str, Any] = {}
    cleaners = {
        "title": lambda v: clean_text(v, required=False, limit=MAX_TITLE_CHARS),
        "prompt": lambda v: clean_text(v, required=True, limit=prompt_limit()),
        "tags": clean_tags,
        "expectations": clean_expectations,
    }
    if raw.get("prompt") is None:
        problems.append(_say(where, "prompt", "is required"))
    for name, cleaner in cleaners.items():
        if name in raw and raw[name] is not None:
            try:
                values[name] = cleaner(raw[name])
            except ValidationError as error:
                problems.append(_say(where, name, error.messages[0]))
    raw_options = raw.get("options")
    options, option_problems = clean_options({} if raw_options is None else raw_options)
    problems += [_say(where, f"options.{n}" if n else "options", p) for n, p in option_problems.items()]
    if problems:
        return None, problems
    return CaseData(options=options, **values), []


def clean_suite(raw: object) -> SuiteData:
    """A whole suite document (parsed JSON or YAML); raises SuiteFileError listing every problem."""
    if not isinstance(raw, dict):
        raise SuiteFileError(["The file must hold one suite: a mapping with 'name' and 'cases'."])
    problems = [
        f"'{k}' is not a field of a suite (the fields are {', '.join(sorted(SUITE_KEYS))})."
        for k in raw
        if k not in SUITE_KEYS
    ]
    name = description = ""
    try:
        name = clean_text(raw.get("name", ""), required=True, limit=MAX_NAME_CHARS)
    except ValidationError as error:
        problems.append(f"'name' {error.messages[0]}.")
    try:
        description = clean_text(raw.get("description") or "", required=False, limit=MAX_DESCRIPTION_CHARS)
    except ValidationError as error:
        problems.append(f"'description' {error.messages[0]}.")
    if "version" in raw and (not isinstance(raw["version"], int) or isinstance(raw["version"], bool)):
        problems.append("'version' must be a whole number (it is informative only).")
    raw_cases = raw.get("cases")
    cases: list[CaseData] = []
    if not isinstance(raw_cases, list) or not raw_cases:
        problems.append("'cases' must be a list of at least one case.")
    elif len(raw_cases) > MAX_CASES:
        problems.append(f"'cases' has {len(raw_cases)} cases; at most {MAX_CASES}.")
    else:
        for number, raw_case in enumerate(raw_cases, start=1):
            case, case_problems = clean_case(raw_case, f"case {number}")
            problems += case_problems
            if case:
                cases.append(case)
    if problems:
        raise SuiteFileError(problems)
    return SuiteData(name=name, description=description, cases=cases)


def parse(content: bytes, filename: str) -> SuiteData:
    """A suite file's bytes, by its name's extension; raises SuiteFileError."""
    lowered = filename.lower()
    if not lowered.endswith(FILE_TYPES):
        raise SuiteFileError(["Choose a .json, .yaml or .yml file."])
    if len(content) > MAX_FILE_BYTES:
        raise SuiteFileError([f"The file is {len(content):,} bytes; a suite file may have at most {MAX_FILE_BYTES:,}."])
    try:
        decoded = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SuiteFileError(["The file is not UTF-8 text."]) from None
    try:
        data = json.loads(decoded) if lowered.endswith(".json") else yaml.safe_load(decoded)
    except json.JSONDecodeError as error:
        raise SuiteFileError([f"Not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})."]) from None
    except yaml.MarkedYAMLError as error:
        where = f" (line {error.problem_mark.line + 1})" if error.problem_mark else ""
        problem = error.problem or error.context or "unreadable"
        raise SuiteFileError([f"Not valid YAML, or a YAML tag this app does not read: {problem}{where}."]) from None
    except (yaml.YAMLError, ValueError, RecursionError) as error:
        raise SuiteFileError([f"The file cannot be read: {type(error).__name__}."]) from None
    return clean_suite(data)


# --- export ------------------------------------------------------------------------------


def document(suite: Any) -> dict[str, Any]:
    """A suite as the file format above (works on the migration's historical models too)."""
    return {
        "name": suite.name,
        "description": suite.description,
        "version": suite.version,
        "cases": [
            {
                "title": case.title,
                "prompt": case.prompt,
                "tags": list(case.tags),
                "options": dict(case.options),
                "expectations": list(case.expectations),
            }
            for case in suite.cases.order_by("position", "pk")
        ],
    }


def to_json(suite: Any) -> str:
    return json.dumps(document(suite), ensure_ascii=False, indent=2) + "\n"


def data_to_json(data: SuiteData) -> str:
    """A validated suite as compact JSON (carried through the import's confirmation step)."""
    cases = [case.fields() for case in data.cases]
    return json.dumps({"name": data.name, "description": data.description, "cases": cases}, ensure_ascii=False)


def to_yaml(suite: Any) -> str:
    return yaml.safe_dump(document(suite), allow_unicode=True, sort_keys=False, width=100)
