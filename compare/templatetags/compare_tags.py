from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from compare import limits, text

register = template.Library()


@register.filter
def split_words(value: str) -> list[str]:
    """'a b c'|split_words → ['a', 'b', 'c'] (for membership tests in templates)."""
    return value.split()


@register.filter
def show_invisible(value: str) -> SafeString:
    """Bidi controls in user text shown as visible markers, so a prompt cannot
    reverse or hide its own words (compare/text.py)."""
    return text.show_invisible(str(value))


@register.filter
def mark_invisible(value: str) -> str:
    """The same for plain-text places such as <title> (autoescaped as usual)."""
    return text.mark_invisible(str(value))


@register.filter
def waiting_text(generation, hidden: bool = False) -> str:
    """Why a side has not started (compare/limits.py); nothing while `hidden` (names hidden from the viewer)."""
    return limits.waiting_text(generation, bool(hidden))


@register.simple_tag
def form_errors(form) -> SafeString:
    """Every error of a form — the form's own and each field's, hidden fields
    included — as one alert list, so no htmx fragment can fail silently."""
    if form is None or not form.errors:
        return mark_safe("")
    items = [format_html("<li>{}</li>", error) for error in form.non_field_errors()]
    for field in form:
        label = field.label if not field.is_hidden else field.name.replace("_", " ").capitalize()
        items += [format_html("<li>{}: {}</li>", label, error) for error in field.errors]
    return format_html('<ul class="error form-errors" role="alert">{}</ul>', mark_safe("".join(items)))
