"""Avro schemas, as Kestra's IonToAvro and IonToParquet take them (`schema`: a JSON text),
and the conversion of a row's values to the types the schema names: text from a CSV
("12", "true", "2024-01-31") becomes the number, boolean or date the column holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

TRUE = {"t", "true", "enabled", "1", "on", "yes"}
FALSE = {"f", "false", "disabled", "0", "off", "no"}
NULL = {"", "null", "\\N"}


def parse(schema: str | dict[str, Any]) -> dict[str, Any]:
    found = json.loads(schema) if isinstance(schema, str) else schema
    if not isinstance(found, dict) or found.get("type") != "record":
        raise ValueError("schema must be an Avro record schema (a JSON object of type record)")
    return found


def _kind(avro: Any) -> tuple[Any, bool]:
    """The type without its null branch, and whether null is allowed."""
    if isinstance(avro, list):
        rest = [t for t in avro if t != "null"]
        return (rest[0] if len(rest) == 1 else rest), len(rest) != len(avro)
    return avro, False


def converter(avro: Any) -> Callable[[Any], Any]:
    kind, nullable = _kind(avro)
    name = kind.get("logicalType") or kind.get("type") if isinstance(kind, dict) else kind

    def convert(value: Any) -> Any:
        if value is None or (isinstance(value, str) and value in NULL and name != "string"):
            if not nullable and name != "string":
                raise ValueError(f"null where the schema allows no null ({avro})")
            return None
        if name in ("int", "long"):
            return int(value)
        if name in ("float", "double"):
            return float(value)
        if name == "boolean":
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in TRUE:
                return True
            if text in FALSE:
                return False
            raise ValueError(f"{value!r} is not a boolean")
        if name == "decimal":
            return Decimal(str(value))
        if name == "date":
            return value if isinstance(value, date) else date.fromisoformat(str(value))
        if name in ("timestamp-millis", "timestamp-micros"):
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if name in ("time-millis", "time-micros"):
            return value if isinstance(value, time) else time.fromisoformat(str(value))
        if name == "string":
            return value if isinstance(value, str) else str(value)
        return value

    return convert


def row_converter(schema: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    fields = [(f["name"], converter(f["type"])) for f in schema["fields"]]

    def convert(row: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for name, to in fields:
            try:
                out[name] = to(row.get(name))
            except (ValueError, ArithmeticError) as exc:
                raise ValueError(f"field '{name}': {exc}") from None
        return out

    return convert


def infer(row: dict[str, Any]) -> dict[str, Any]:
    """A record schema for rows like `row`, every field nullable."""

    def kind(value: Any) -> Any:
        if isinstance(value, bool):
            return "boolean"
        if isinstance(value, int):
            return "long"
        if isinstance(value, float):
            return "double"
        if isinstance(value, Decimal):
            return "double"
        if isinstance(value, datetime):
            return {"type": "long", "logicalType": "timestamp-micros"}
        if isinstance(value, date):
            return {"type": "int", "logicalType": "date"}
        if isinstance(value, bytes):
            return "bytes"
        return "string"

    return {
        "type": "record",
        "name": "Record",
        "fields": [{"name": k, "type": ["null", kind(v)]} for k, v in row.items()],
    }
