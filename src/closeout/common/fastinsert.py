"""Insert many rows fast: COPY on PostgreSQL, batched executemany on SQLite, ids allocated first
so that child rows can point at their parents without reading anything back."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from django.db import connection, models


def allocate_ids(model: type[models.Model], count: int) -> list[int]:
    """Reserve `count` primary keys for `model` inside the current transaction."""
    if count <= 0:
        return []
    table = model._meta.db_table
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


def _value(field: models.Field, value):
    if connection.vendor != "postgresql":
        return field.get_db_prep_save(value, connection)
    if isinstance(field, models.JSONField):
        return json.dumps(value, ensure_ascii=False)
    return value


def insert_rows(model: type[models.Model], columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """Insert rows (tuples in `columns` order, `id` included) and return how many were written.

    Columns left out get their field default (or NULL), as the ORM would write them.
    """
    meta = model._meta
    given = [meta.get_field(name) for name in columns]
    rest = [f for f in meta.concrete_fields if f not in given and not f.primary_key]
    defaults = tuple(f.get_default() if f.has_default() or not f.null else None for f in rest)
    fields = given + rest
    rows = (tuple(row) + defaults for row in rows)
    db_columns = [f.column for f in fields]
    table = meta.db_table
    count = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            column_list = ", ".join(f'"{c}"' for c in db_columns)
            with cursor.cursor.copy(f'COPY "{table}" ({column_list}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row([_value(f, v) for f, v in zip(fields, row, strict=True)])
                    count += 1
            return count
        placeholders = ", ".join(["%s"] * len(db_columns))
        column_list = ", ".join(f'"{c}"' for c in db_columns)
        sql = f'INSERT INTO "{table}" ({column_list}) VALUES ({placeholders})'
        batch = []
        for row in rows:
            batch.append([_value(f, v) for f, v in zip(fields, row, strict=True)])
            if len(batch) >= 2000:
                cursor.executemany(sql, batch)
                count += len(batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)
            count += len(batch)
    return count


def insert_one(instance: models.Model) -> int:
    """INSERT one model instance as `save(force_insert=True)` would, without the ORM's per-call
    query building; return the new primary key. For the few rows written on hot request paths."""
    meta = instance._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    columns = ", ".join(f'"{f.column}"' for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    values = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(f'INSERT INTO "{meta.db_table}" ({columns}) VALUES ({placeholders}) '
                       f'RETURNING "{meta.pk.column}"', values)
        instance.pk = cursor.fetchone()[0]
    instance._state.adding, instance._state.db = False, connection.alias
    return instance.pk


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
