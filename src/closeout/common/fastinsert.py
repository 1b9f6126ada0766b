"""Write many rows fast: COPY on PostgreSQL, batched executemany on SQLite, ids allocated first
so that child rows can point at their parents without reading anything back; set-based updates
by primary key."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models import F, Lookup, Q

SQLITE_CHUNK = 500  # ids per statement on SQLite, well under its bound-parameter limit


def _connection():
    # The connection proxy costs a thread-local lookup per attribute: resolve it once per call.
    return connections[DEFAULT_DB_ALIAS]


def allocate_ids(model: type[models.Model], count: int) -> list[int]:
    """Reserve `count` primary keys for `model` inside the current transaction."""
    if count <= 0:
        return []
    table = model._meta.db_table
    connection = _connection()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count]
            )
            return [row[0] for row in cursor.fetchall()]
        # SQLite: the IMMEDIATE transaction holds the write lock, so max(id) cannot move under us.
        cursor.execute(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"')
        start = cursor.fetchone()[0] + 1
        return list(range(start, start + count))


def _converters(fields: list[models.Field], connection) -> list[Callable | None]:
    """One converter per column, or None where the driver takes the Python value as it is."""
    if connection.vendor != "postgresql":
        return [lambda value, f=f: f.get_db_prep_save(value, connection) for f in fields]
    return [_json if isinstance(f, models.JSONField) else None for f in fields]


def _json(value) -> str:
    return "{}" if value == {} else json.dumps(value, ensure_ascii=False)  # most event data is empty


def insert_rows(model: type[models.Model], columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """Insert rows (tuples in `columns` order, `id` included) and return how many were written.

    Columns left out get their field default (or NULL), as the ORM would write them.
    """
    connection = _connection()
    meta = model._meta
    given = [meta.get_field(name) for name in columns]
    rest = [f for f in meta.concrete_fields if f not in given and not f.primary_key]
    defaults = tuple(f.get_default() if f.has_default() or not f.null else None for f in rest)
    fields = given + rest
    convert = [(i, c) for i, c in enumerate(_converters(fields, connection)) if c is not None]
    column_list = ", ".join(f'"{f.column}"' for f in fields)
    table = meta.db_table

    def prepared(row: Sequence) -> list:
        values = [*row, *defaults]
        for i, converter in convert:
            values[i] = converter(values[i])
        return values

    count = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f'COPY "{table}" ({column_list}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(prepared(row))
                    count += 1
            return count
        placeholders = ", ".join(["%s"] * len(fields))
        sql = f'INSERT INTO "{table}" ({column_list}) VALUES ({placeholders})'
        batch = []
        for row in rows:
            batch.append(prepared(row))
            if len(batch) >= 2000:
                cursor.executemany(sql, batch)
                count += len(batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)
            count += len(batch)
    return count


def update_by_ids(model: type[models.Model], ids: Sequence[int], **values) -> int:
    """Set the same column values on every row whose primary key is in `ids`; return how many rows
    changed. One statement on PostgreSQL, whatever the number of ids."""
    if not ids:
        return 0
    if _connection().vendor != "postgresql":
        return sum(model.objects.filter(pk__in=ids[start:start + SQLITE_CHUNK]).update(**values)
                   for start in range(0, len(ids), SQLITE_CHUNK))
    return model.objects.filter(among("pk", ids)).update(**values)


def update_columns(model: type[models.Model], columns: Sequence[str], rows: Sequence[Sequence], **values) -> int:
    """Set `columns` row by row from (primary key, *column values) tuples, and the same `values` on
    every one of those rows; return how many rows changed. The row-by-row columns hold integers or
    strings. One statement on PostgreSQL (`UPDATE … FROM unnest(…)`) instead of the ORM's
    `bulk_update`, whose CASE per row costs more to build than the update takes to run."""
    if not rows:
        return 0
    connection = _connection()
    meta = model._meta
    table, pk = meta.db_table, meta.pk.column
    targets = [meta.get_field(name).column for name in columns]
    fields = [meta.get_field(name) for name in values]
    constants = "".join(f', "{f.column}" = %s' for f in fields)
    params = [f.get_db_prep_save(value, connection) for f, value in zip(fields, values.values(), strict=True)]
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            assignments = ", ".join(f'"{column}" = %s' for column in targets)
            cursor.executemany(f'UPDATE "{table}" SET {assignments}{constants} WHERE "{pk}" = %s',
                               [(*row[1:], *params, row[0]) for row in rows])
            return len(rows)
        arrays = [_array_literal(column) for column in zip(*rows, strict=True)]
        assignments = ", ".join(f'"{column}" = v.c{i}' for i, column in enumerate(targets, 1))
        unnest = ", ".join(f"%s::{cast}[]" for _, cast in arrays)
        names = ", ".join(["key", *(f"c{i}" for i in range(1, len(targets) + 1))])
        cursor.execute(f'UPDATE "{table}" AS t SET {assignments}{constants} '
                       f'FROM unnest({unnest}) AS v({names}) WHERE t."{pk}" = v.key',
                       [*params, *(literal for literal, _ in arrays)])
        return cursor.rowcount


class _AnyOf(Lookup):
    """`column = ANY(array)`: one parameter for any number of values. Not registered as a lookup;
    `among()` builds it."""

    lookup_name = "any_of"
    prepare_rhs = False

    def __init__(self, lhs, literal: str, cast: str):
        self.cast = cast
        super().__init__(lhs, literal)

    def as_sql(self, compiler, connection):
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs_sql} = ANY(%s::{self.cast}[])", [*lhs_params, self.rhs]


def _int_array(values: Iterable[int]) -> str:
    """A PostgreSQL array literal of integers (which need no quoting)."""
    return "{" + ",".join(str(int(v)) for v in values) + "}"


def _array_literal(values) -> tuple[str, str]:
    items = list(values)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        return _int_array(items), "bigint"
    if all(isinstance(v, str) for v in items):
        quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in items)
        return "{" + ",".join(quoted) + "}", "text"
    raise TypeError("arrays hold integers or strings")


def among(name: str, values) -> Q | Lookup:
    """A filter equal to `name__in=values`, sent on PostgreSQL as one array parameter instead of
    one placeholder per value (thousands of placeholders cost more to build than the query to run)."""
    values = list(values)
    if _connection().vendor != "postgresql" or not values:
        return Q(**{f"{name}__in": values})
    literal, cast = _array_literal(values)
    return _AnyOf(F(name), literal, cast)


def insert_one(instance: models.Model, *, durable: bool = True, unless_taken: str = "") -> int | None:
    """INSERT one model instance as `save(force_insert=True)` would, without the ORM's per-call
    query building; return the new primary key. For the few rows written on hot request paths.

    With `unless_taken` (a column under a unique constraint), a row already holding the instance's
    value there is left alone and nothing is inserted: None is returned, with no error to roll back
    (`ON CONFLICT … DO NOTHING`, on both engines), so the caller needs no savepoint.

    `durable=False` is for log rows written on their own, outside any transaction: PostgreSQL
    then acknowledges the commit before its WAL is flushed (`synchronous_commit` off for that one
    statement, sent in the same round trip), so a crash of the database server itself may lose
    the last fraction of a second of them. Inside a transaction the row is as durable as the
    transaction, whatever `durable` says.
    """
    meta = instance._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    columns = ", ".join(f'"{f.column}"' for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    values = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    conflict = f' ON CONFLICT ("{meta.get_field(unless_taken).column}") DO NOTHING' if unless_taken else ""
    sql = f'INSERT INTO "{meta.db_table}" ({columns}) VALUES ({placeholders}){conflict} RETURNING "{meta.pk.column}"'
    row = fetch_one(sql, values, durable=durable)
    if row is None:
        return None
    (instance.pk,) = row
    instance._state.adding, instance._state.db = False, connection.alias
    return instance.pk


def fetch_one(sql: str, params, *, durable: bool = True) -> tuple | None:
    """Run one statement and return its first row; `durable=False` as for `insert_one`."""
    relaxed = (not durable and connection.vendor == "postgresql" and not connection.in_atomic_block
               and connection.get_autocommit()
               and not connection.settings_dict.get("OPTIONS", {}).get("server_side_binding"))
    with connection.cursor() as cursor:
        if relaxed:
            # One simple query holding two statements runs as one implicit transaction, so the
            # SET LOCAL ends with it. (Client-side binding only: a prepared statement holds one.)
            cursor.execute("SET LOCAL synchronous_commit TO off; " + sql, params)
            cursor.nextset()
        else:
            cursor.execute(sql, params)
        return cursor.fetchone()


def increment(model: type[models.Model], pk, column: str, by: int = 1, *also: str) -> tuple:
    """Add `by` to `column` of the row `pk` (created with its defaults when missing) and return
    the new value followed by the columns named in `also`, in one UPDATE ... RETURNING.

    The UPDATE holds the row (a row lock on PostgreSQL, the write lock on SQLite) until commit:
    counters taken this way are gap-free and in commit order.
    """
    returning = ", ".join(f'"{c}"' for c in (column, *also))
    sql = (f'UPDATE "{model._meta.db_table}" SET "{column}" = "{column}" + %s '
           f'WHERE "{model._meta.pk.column}" = %s RETURNING {returning}')
    with connection.cursor() as cursor:
        cursor.execute(sql, [by, pk])
        row = cursor.fetchone()
        if row is None:
            model.objects.get_or_create(pk=pk)
            cursor.execute(sql, [by, pk])
            row = cursor.fetchone()
    return tuple(row)
