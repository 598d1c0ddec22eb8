"""Every change to a suite's cases, in one place: the browser (compare/views/suites.py),
an import (a new version of a suite with the same name), the admin (compare/admin.py)
and the built-in suite's migration all call these, and each change of the cases raises
`Suite.version` by one through `bump_version`. Renaming a suite or changing its
description leaves the version alone: suite runs compare cases, not names.

The functions take the suite as an object and reach its model through it, so they work
with historical models too. Each one locks the suite first and reads the rows it changes
again under that lock: a suite or case deleted by someone else between the page's lookup
and the lock raises `Gone` (the page says so) instead of an error or a half-written row.
"""

from typing import Any

from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from compare.suites.io import CaseData
from compare.suites.models import Suite, SuiteCase


def bump_version(suite: Any) -> None:
    """The one place a suite's version rises: after any change to its cases."""
    type(suite).objects.filter(pk=suite.pk).update(version=F("version") + 1, updated_at=timezone.now())
    suite.refresh_from_db(fields=["version", "updated_at"])


class Gone(Exception):
    """The suite or case to change was deleted meanwhile; the message says which."""


def _lock(suite: Any) -> None:
    """Serialise edits of one suite (two people reordering at once must not tangle positions);
    `Gone` when it no longer exists."""
    if type(suite).objects.select_for_update().filter(pk=suite.pk).first() is None:
        raise Gone("This suite was deleted meanwhile.")


def _relock(case: SuiteCase) -> SuiteCase:
    """`case` as stored now, its suite locked; `Gone` when either was deleted meanwhile."""
    _lock(case.suite)
    current = type(case).objects.filter(pk=case.pk, suite_id=case.suite_id).first()
    if current is None:
        raise Gone("This case was deleted meanwhile.")
    current.suite = case.suite  # the caller's object: `bump_version` refreshes the version it shows
    return current


def _renumber(suite: Any) -> None:
    for position, case in enumerate(suite.cases.order_by("position", "pk")):
        if case.position != position:
            case.position = position
            case.save(update_fields=["position"])


@transaction.atomic
def create_suite(*, name: str, description: str = "", cases: list[CaseData], author: Any = None) -> Suite:
    """A new suite at version 1 with `cases`."""
    suite = Suite.objects.create(name=name, description=description, created_by=author)
    for position, case in enumerate(cases):
        SuiteCase.objects.create(suite=suite, position=position, **case.fields())
    return suite


@transaction.atomic
def replace_cases(suite: Any, cases: list[CaseData], *, description: str | None = None) -> None:
    """The suite's cases become `cases` (an import of a new version, the built-in refresh)."""
    _lock(suite)
    if description is not None and description != suite.description:
        suite.description = description
        suite.save(update_fields=["description", "updated_at"])
    suite.cases.all().delete()
    for position, case in enumerate(cases):
        suite.cases.create(position=position, **case.fields())
    bump_version(suite)


@transaction.atomic
def add_case(suite: Suite, case: CaseData) -> SuiteCase:
    _lock(suite)
    last = suite.cases.aggregate(last=Max("position"))["last"]
    created = suite.cases.create(position=0 if last is None else last + 1, **case.fields())
    bump_version(suite)
    return created


@transaction.atomic
def update_case(case: SuiteCase, data: CaseData) -> bool:
    """Save `data` over `case`; False (and no new version) when nothing changed."""
    case = _relock(case)
    fields = data.fields()
    if all(getattr(case, name) == value for name, value in fields.items()):
        return False
    for name, value in fields.items():
        setattr(case, name, value)
    case.save(update_fields=list(fields))
    bump_version(case.suite)
    return True


@transaction.atomic
def delete_case(case: SuiteCase) -> None:
    case = _relock(case)
    suite = case.suite
    case.delete()
    _renumber(suite)
    bump_version(suite)


@transaction.atomic
def move_case(case: SuiteCase, offset: int) -> bool:
    """Move a case `offset` places (−1 up, +1 down); False when it is already at that end."""
    case = _relock(case)
    suite = case.suite
    _renumber(suite)
    ordered = list(suite.cases.order_by("position", "pk"))
    index = next(i for i, c in enumerate(ordered) if c.pk == case.pk)
    target = index + offset
    if not 0 <= target < len(ordered):
        return False
    ordered.insert(target, ordered.pop(index))
    for position, item in enumerate(ordered):
        if item.position != position:
            item.position = position
            item.save(update_fields=["position"])
    bump_version(suite)
    return True


def free_name(base: str) -> str:
    """`base`, or "base (copy)", "base (copy 2)"… whichever no suite has yet (at most 120 characters)."""
    for suffix in ["", " (copy)", *(f" (copy {n})" for n in range(2, 1000))]:
        name = base[: 120 - len(suffix)] + suffix
        if not Suite.objects.filter(name=name).exists():
            return name
    raise ValueError("No free name")  # a thousand copies of one suite


@transaction.atomic
def duplicate(suite: Suite, author: Any) -> Suite:
    """An editable copy (of the built-in suite, say), starting at version 1."""
    cases = [CaseData(**case.snapshot()) for case in suite.cases.all()]
    return create_suite(name=free_name(suite.name), description=suite.description, cases=cases, author=author)
