"""Values between PostgreSQL and flows: `parameters` in, rows out.

Rendered properties are text, so a parameter is converted to what its placeholder's type
takes (`parameters: {year: "{{ inputs.year }}"}` binds an int to an int column). Rows come
out as Kestra's JDBC tasks hand them on, as JSON: numerics as numbers (as text when a float
would change them), timestamps and dates as ISO-8601 text (UTC, with a Z, for timestamptz),
intervals as ISO-8601 durations, json columns as their value, bytea as base64.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from daemon.sdk.errors import TaskFailed
from daemon.sdk.sqldb import jsonable

if TYPE_CHECKING:
    import asyncpg  # type: ignore[import-untyped]
    from asyncpg.prepared_stmt import PreparedStatement  # type: ignore[import-untyped]

_INTEGERS = {"int2", "int4", "int8", "oid"}
_FLOATS = {"float4", "float8"}
_TEXTS = {"text", "varchar", "bpchar", "name", "char", "unknown"}


def arguments(statement: PreparedStatement, names: list[str], values: dict[str, Any]) -> list[Any]:
    """The values for `$1..$n` (`names` in placeholder order), each fitted to its type."""
    missing = [name for name in names if name not in values]
    if missing:
        raise TaskFailed(
            f"the SQL uses :{missing[0]}, which is not in parameters "
            f"({', '.join(sorted(values)) or 'none given'})",
            non_retryable=True,
        )
    types = statement.get_parameters()
    return [_coerce(name, values[name], types[i].name) for i, name in enumerate(names)]


def _coerce(name: str, value: Any, type_name: str) -> Any:
    if value is None:
        return None
    try:
        if type_name in _INTEGERS and isinstance(value, str | float):
            return int(value) if isinstance(value, str) else _whole(value)
        if type_name in _FLOATS and isinstance(value, str | int):
            return float(value)
        if type_name == "numeric" and isinstance(value, str | int | float):
            return Decimal(str(value))
        if type_name == "bool" and isinstance(value, str):
            return {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}[
                value.strip().lower()
            ]
        if type_name in _TEXTS and not isinstance(value, str):
            return json.dumps(value) if isinstance(value, dict | list) else str(value)
        if type_name in ("json", "jsonb") and not isinstance(value, str):
            return json.dumps(value)
        if type_name == "date" and isinstance(value, str):
            return date.fromisoformat(value)
        if type_name == "timestamp" and isinstance(value, str):
            return datetime.fromisoformat(value).replace(tzinfo=None)
        if type_name == "timestamptz" and isinstance(value, str):
            moment = datetime.fromisoformat(value)
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if type_name == "uuid" and isinstance(value, str):
            return UUID(value)
    except (ValueError, KeyError):
        raise TaskFailed(
            f"parameter :{name} is {value!r}, which is not a valid {type_name}", non_retryable=True
        ) from None
    return value


def _whole(value: float) -> int:
    if not value.is_integer():
        raise ValueError(value)
    return int(value)


def json_row(statement: PreparedStatement, record: asyncpg.Record) -> dict[str, Any]:
    """A row as Kestra hands it on: column label -> JSON value (a repeated label: the last)."""
    return {
        attr.name: jsonable(record[i], attr.type.name)
        for i, attr in enumerate(statement.get_attributes())
    }
