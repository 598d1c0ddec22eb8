"""Reading ids and numbers out of untrusted text (query strings, form fields, JSON).

Both helpers answer None (or the default) instead of raising, so a view can treat
a made-up value like a missing one, and never turns a typo into a 500.
"""

import uuid
from typing import overload


def parse_uuid(value: object) -> uuid.UUID | None:
    """`value` as a UUID (a UUID, or text in any form `uuid.UUID` reads), else None."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@overload
def parse_whole_number(value: object, default: int, minimum: int = 0, maximum: int | None = None) -> int: ...


@overload
def parse_whole_number(
    value: object, default: None = None, minimum: int = 0, maximum: int | None = None
) -> int | None: ...


def parse_whole_number(
    value: object, default: int | None = None, minimum: int = 0, maximum: int | None = None
) -> int | None:
    """`value` as an int from `minimum` to `maximum`, else `default`.

    Text must be plain ASCII digits: no sign, no spaces, no "1e3", no "²" or other
    Unicode digits that `str.isdigit` accepts and `int` does not, and not thousands of
    digits (`int` refuses those). An int is taken
    as it is (a bool is not a number here).
    """
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            return default
        try:
            number = int(value)
        except ValueError:  # more digits than int() reads from text (sys.get_int_max_str_digits)
            return default
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        return default
    if number < minimum or (maximum is not None and number > maximum):
        return default
    return number
