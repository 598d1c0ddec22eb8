"""What text the app accepts and how it is shown: the one rule for every text field
that reaches the database (prompt, note, tag, criterion, suite case).

- Text must be valid Unicode: a lone surrogate (possible in JSON, "\\ud800") cannot be
  stored and is refused with a clear message instead of failing the save.
- Control characters other than tab and newlines are refused; so are absurdly long
  stacks of combining marks (a "grapheme bomb" that draws over the whole page).
- What is stored is NFC-normalised, so the same words compare and search equal.
- Text with no visible character (only spaces, zero-width characters, joiners, a BOM,
  bidi controls…) counts as empty.
- Bidi controls are kept (Arabic and Hebrew prompts need them) but shown visibly
  wherever a prompt is displayed (`show_invisible`), so a prompt cannot disguise
  its own text in the history.
"""

import re
import unicodedata

from django import forms
from django.core.exceptions import ValidationError
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Text a prompt asks to be written into the image is what people put in quotes: the
# model hint (compare/hints.py), the simulator's drawing and the text check
# (compare/checks/textcheck.py) all read it with this. Single quotes are left out:
# apostrophes ("don't") would pair up into false quotations.
QUOTED = re.compile(r'"([^"]+)"|“([^”]+)”|„([^“”]+)[“”]|«([^»]+)»|「([^」]+)」|『([^』]+)』')

# The longest run of combining marks one character may carry (Vietnamese stacks two or
# three; scripts such as Tibetan a handful; more is drawing, not writing).
MAX_COMBINING_RUN = 16

# Characters that change direction without being seen; shown by name.
BIDI_CONTROLS = {
    "\u200e": "LRM",
    "\u200f": "RLM",
    "\u061c": "ALM",
    "\u202a": "LRE",
    "\u202b": "RLE",
    "\u202c": "PDF",
    "\u202d": "LRO",
    "\u202e": "RLO",
    "\u2066": "LRI",
    "\u2067": "RLI",
    "\u2068": "FSI",
    "\u2069": "PDI",
}
_BIDI_RE = re.compile("[" + "".join(BIDI_CONTROLS) + "]")
_ALLOWED_CONTROLS = {"\t", "\n", "\r"}
# Invisible on their own: separators, format characters (ZWSP, ZWJ, BOM, bidi…),
# controls, and marks with nothing to sit on. Hangul fillers and the braille blank
# render as nothing too.
_INVISIBLE_CATEGORIES = {"Zs", "Zl", "Zp", "Cf", "Cc", "Mn", "Me", "Cs", "Co", "Cn"}
_INVISIBLE_EXTRA = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800", "\u180e"}


def problem(value: str) -> str | None:
    """Why `value` cannot be stored, or None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "This text contains characters that are not valid Unicode (a lone surrogate); remove them."
    run = 0
    for char in value:
        category = unicodedata.category(char)
        if category == "Cc" and char not in _ALLOWED_CONTROLS:
            return f"This text contains a control character (U+{ord(char):04X}); remove it."
        if category in {"Mn", "Me"}:
            run += 1
            if run > MAX_COMBINING_RUN:
                return f"This text stacks more than {MAX_COMBINING_RUN} combining marks on one character."
        else:
            run = 0
    return None


def has_visible(value: str) -> bool:
    return any(unicodedata.category(c) not in _INVISIBLE_CATEGORIES and c not in _INVISIBLE_EXTRA for c in value)


def clean(value: str, *, label: str = "This field") -> str:
    """The text to store: validated, NFC-normalised, trimmed; "" when nothing is visible.

    Raises ValidationError with a message a person can act on."""
    why = problem(value)
    if why:
        raise ValidationError(why, code="invalid_text")
    value = unicodedata.normalize("NFC", value).strip()
    return value if has_visible(value) else ""


def mark_invisible(value: str) -> str:
    """Plain text with each bidi control replaced by its visible name, e.g. ⟨RLO⟩."""
    return _BIDI_RE.sub(lambda m: f"⟨{BIDI_CONTROLS[m.group(0)]}⟩", value)


def show_invisible(value: str) -> SafeString:
    """HTML for `value` with each bidi control shown as a small visible marker."""
    escaped = escape(value)
    return mark_safe(
        _BIDI_RE.sub(
            lambda m: (
                f'<span class="bidi-mark" title="invisible direction control">⟨{BIDI_CONTROLS[m.group(0)]}⟩</span>'
            ),
            escaped,
        )
    )


class TextField(forms.CharField):
    """A form field for text that is stored: `clean` above, then the usual checks.
    Text with no visible character is empty (so a required field says so)."""

    default_error_messages = {"required": "This field is required (invisible characters alone do not count)."}

    def to_python(self, value):
        value = super().to_python(value)
        return clean(value) if value else value
