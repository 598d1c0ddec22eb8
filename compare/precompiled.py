"""Queries compiled once and run many times: the polls of the run page (compare/live.py)
and of the suite run page (compare/suites/results.py `stamp`) run one aggregate query each,
and every generation that ends updates its run's stored status (compare/models.py
`RunQuerySet.refresh_state`): statements Django takes several times longer to compile than
the database takes to run.

`Precompiled(build, stand_ins)` compiles `build(*stand-in values)` once per database,
finds each stand-in again among the SQL's parameters, and then runs with the real values
in those places. Where a stand-in does not show up as a parameter (a backend that inlines
it), it compiles each time instead, as Django would.

`objects()` runs a compiled SELECT and builds its model instances (with their annotations
and `select_related` objects) as a QuerySet would, and `attach` hands such instances to an
object as a prefetched relation: the API's read of one run (compare/api/serializers.py
`run_for_viewer`) is four such statements, with nothing compiled per request.
"""

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.db import connections
from django.db.models import Field, Model
from django.db.models.query import get_related_populators


class HasQuery(Protocol):
    """A QuerySet, or anything else holding a `django.db.models.sql.Query` (an UpdateQuery)."""

    query: Any


# A stand-in value, and how a real value takes its place in the parameters (None: as it is).
StandIn = tuple[Any, Callable[[Any, Any], Any] | None]


def prep_of(model: type[Model], field: str) -> Callable[[Any, Any], Any]:
    """How a value for `model.field` (or the field a foreign key points at) is sent to the
    database: a UUID as hex text on SQLite, a datetime as UTC text there, and so on."""
    found = model._meta.get_field(field)
    target = getattr(found, "target_field", found)
    assert isinstance(target, Field), f"{model.__name__}.{field} is not a concrete field"
    return lambda value, connection: target.get_db_prep_value(value, connection)


def _matches(param: Any, stand_in: Any) -> bool:
    if isinstance(stand_in, uuid.UUID):
        return str(param).replace("-", "") == stand_in.hex
    return param == stand_in and not isinstance(param, bool)


@dataclass(frozen=True)
class _Columns:
    """What a compiled SELECT's rows hold, as its compiler worked it out: no connection is
    kept (a compiler holds the compiling thread's, which must be free to go with its thread)."""

    query: Any
    select: list
    klass_info: dict | None
    annotation_col_map: dict | None
    col_count: int
    fetch_mode: Any

    @classmethod
    def of(cls, built: HasQuery, compiler: Any) -> "_Columns":
        # An UPDATE's compiler has no columns (its `sql` is all that is used).
        return cls(
            built.query,
            getattr(compiler, "select", []),
            getattr(compiler, "klass_info", None),
            getattr(compiler, "annotation_col_map", None),
            getattr(compiler, "col_count", 0),
            getattr(built, "_fetch_mode", None),
        )

    def compiler(self, alias: str) -> Any:
        """A compiler on this thread's connection that knows the columns without compiling."""
        compiler = self.query.get_compiler(using=alias)
        compiler.select, compiler.klass_info = self.select, self.klass_info
        compiler.annotation_col_map, compiler.col_count = self.annotation_col_map, self.col_count
        return compiler


class Precompiled:
    def __init__(self, build: Callable[..., HasQuery], stand_ins: Sequence[StandIn]):
        self.build = build
        self.stand_ins = list(stand_ins)
        # Per database: the stand-ins' columns, SQL, parameters and where each stand-in sits
        # in them; None when one could not be found.
        self._compiled: dict[str, tuple[_Columns, str, tuple, list[list[int]]] | None] = {}

    def _compile(self, alias: str, values: Sequence[Any]) -> tuple[_Columns, str, tuple]:
        built = self.build(*values)
        compiler = built.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        return _Columns.of(built, compiler), sql, tuple(params)

    def _prepared(self, alias: str, values: Sequence[Any]) -> tuple[_Columns, str, list]:
        if alias not in self._compiled:
            columns, sql, params = self._compile(alias, [s for s, _ in self.stand_ins])
            connection = connections[alias]
            sent = [prepare(s, connection) if prepare else s for s, prepare in self.stand_ins]
            slots = [[i for i, p in enumerate(params) if _matches(p, s)] for s in sent]
            self._compiled[alias] = (columns, sql, params, slots) if all(slots) else None
        compiled = self._compiled[alias]
        if compiled is None:
            columns, sql, own = self._compile(alias, values)
            return columns, sql, list(own)
        columns, sql, template, slots = compiled
        sent_params = list(template)
        connection = connections[alias]
        for (_, prepare), value, where in zip(self.stand_ins, values, slots, strict=True):
            sent = prepare(value, connection) if prepare else value
            for i in where:
                sent_params[i] = sent
        return columns, sql, sent_params

    def sql(self, alias: str, *values: Any) -> tuple[str, list]:
        """The SQL and parameters of `build(*values)` on database `alias`."""
        _, sql, params = self._prepared(alias, values)
        return sql, params

    def objects(self, alias: str, *values: Any) -> list[Any]:
        """The model instances `build(*values)` (a QuerySet of model instances) gives, as
        iterating over it would: fields, annotations and `select_related` objects set, the
        database's values converted. Its `prefetch_related` are not done (see `attach`)."""
        columns, sql, params = self._prepared(alias, values)
        with connections[alias].cursor() as cursor:
            cursor.execute(sql, params)
            rows: Iterable = cursor.fetchall()
        compiler = columns.compiler(alias)
        select, klass_info, annotations = columns.select, columns.klass_info, columns.annotation_col_map
        assert klass_info is not None, "objects() is for querysets of model instances"
        converters = compiler.get_converters([column for column, _, _ in select[: columns.col_count]])
        if converters:
            rows = compiler.apply_converters(rows, converters)
        model = klass_info["model"]
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        names = [column.target.attname for column, _, _ in select[start:end]]
        fetch_mode = columns.fetch_mode
        related = get_related_populators(klass_info, select, alias, fetch_mode)
        found = []
        for row in rows:
            obj = model.from_db(alias, names, row[start:end], fetch_mode=fetch_mode)
            for populator in related:
                populator.populate(row, obj)
            for name, position in (annotations or {}).items():
                setattr(obj, name, row[position])
            found.append(obj)
        return found

    def first(self, alias: str, *values: Any) -> Any:
        """The first instance `objects` gives, or None."""
        found = self.objects(alias, *values)
        return found[0] if found else None

    def exists(self, alias: str, *values: Any) -> bool:
        """Whether the statement gives a row (for a SELECT ... LIMIT 1)."""
        sql, params = self.sql(alias, *values)
        with connections[alias].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone() is not None

    def execute(self, alias: str, *values: Any) -> int:
        """Run the statement (an UPDATE); the rows it changed."""
        sql, params = self.sql(alias, *values)
        with connections[alias].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount


def attach_grouped(owners: Sequence[Model], name: str, related: Sequence[Model], link: str) -> None:
    """`attach` to each owner the objects of `related` whose `link` (say "run_id") is its pk."""
    grouped: dict[Any, list[Model]] = {}
    for obj in related:
        grouped.setdefault(getattr(obj, link), []).append(obj)
    for owner in owners:
        attach(owner, name, grouped.get(owner.pk, []))


def attach(owner: Model, name: str, related: Sequence[Model]) -> None:
    """Give `owner` the objects of its to-many relation `name` (a reverse foreign key or a
    many-to-many) as `prefetch_related` would: `owner.<name>.all()` then runs no query. The
    objects of a reverse foreign key learn their owner too (`gen.run` needs no query)."""
    manager = getattr(owner, name)
    if hasattr(manager, "prefetch_cache_name"):  # many-to-many
        cache_name = manager.prefetch_cache_name
    else:  # a reverse foreign key: `manager.field` points back at `owner`
        cache_name = manager.field.remote_field.cache_name
        for obj in related:
            manager.field.set_cached_value(obj, owner)
    queryset = manager.get_queryset()
    queryset._result_cache = list(related)
    queryset._prefetch_done = True
    owner.__dict__.setdefault("_prefetched_objects_cache", {})[cache_name] = queryset
