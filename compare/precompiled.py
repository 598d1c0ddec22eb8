"""Queries compiled once and run many times: the polls of the run page (compare/live.py)
and of the suite run page (compare/suites/results.py `stamp`) run one aggregate query each,
and every generation that ends updates its run's stored status (compare/models.py
`RunQuerySet.refresh_state`): statements Django takes several times longer to compile than
the database takes to run.

`Precompiled(build, stand_ins)` compiles `build(*stand-in values)` once per database,
finds each stand-in again among the SQL's parameters, and then runs with the real values
in those places. Where a stand-in does not show up as a parameter (a backend that inlines
it), it compiles each time instead, as Django would.
"""

import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from django.db import connections
from django.db.models import Field, Model


class HasQuery(Protocol):
    """A QuerySet, or anything else holding a `django.db.models.sql.Query` (an UpdateQuery)."""

    query: Any


# A stand-in value, and how a real value takes its place in the parameters (None: as it is).
StandIn = tuple[Any, Callable[[Any, Any], Any] | None]


def uuid_of(model: type[Model], field: str) -> Callable[[Any, Any], Any]:
    """How a UUID for `model.field` (a UUID field, or a foreign key to one) is sent to the database."""
    found = model._meta.get_field(field)
    target = getattr(found, "target_field", found)
    assert isinstance(target, Field), f"{model.__name__}.{field} is not a concrete field"
    return lambda value, connection: target.get_db_prep_value(value, connection)


def _matches(param: Any, stand_in: Any) -> bool:
    if isinstance(stand_in, uuid.UUID):
        return str(param).replace("-", "") == stand_in.hex
    return param == stand_in and not isinstance(param, bool)


class Precompiled:
    def __init__(self, build: Callable[..., HasQuery], stand_ins: Sequence[StandIn]):
        self.build = build
        self.stand_ins = list(stand_ins)
        self._compiled: dict[str, tuple[str, tuple, list[list[int]]] | None] = {}

    def sql(self, alias: str, *values: Any) -> tuple[str, list]:
        """The SQL and parameters of `build(*values)` on database `alias`."""
        if alias not in self._compiled:
            sql, params = self.build(*(s for s, _ in self.stand_ins)).query.get_compiler(using=alias).as_sql()
            slots = [[i for i, p in enumerate(params) if _matches(p, s)] for s, _ in self.stand_ins]
            self._compiled[alias] = (sql, tuple(params), slots) if all(slots) else None
        compiled = self._compiled[alias]
        if compiled is None:
            sql, params = self.build(*values).query.get_compiler(using=alias).as_sql()
            return sql, list(params)
        sql, template, slots = compiled
        params = list(template)
        connection = connections[alias]
        for (_, prepare), value, where in zip(self.stand_ins, values, slots, strict=True):
            sent = prepare(value, connection) if prepare else value
            for i in where:
                params[i] = sent
        return sql, params
