from django import template

register = template.Library()


@register.filter
def split_words(value: str) -> list[str]:
    """'a b c'|split_words → ['a', 'b', 'c'] (for membership tests in templates)."""
    return value.split()
