"""Amazon Ion, as Kestra's files use it: `fromIon()` reads what a JDBC `STORE` (or any
Ion-writing task) produced, `toIon` writes a value. Read with the amazon-ion library (a
dependency already, for the item tasks), imported on first use.

Values come back as expressions see JSON: maps, lists, text, numbers, booleans, null;
timestamps as their ISO-8601 text, decimals as numbers, blobs as base64 text.
"""

from __future__ import annotations

import base64
import json
import math
import sys
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from daemon.expr import limits


class IonError(ValueError):
    """Text that is not Ion."""


def loads(text: str | bytes, all_rows: bool = False) -> Any:
    """The first value of the Ion data (every value, as a list, with `all_rows`)."""
    if "amazon.ion.simpleion" not in sys.modules:
        limits.leave_loop("fromIon()")  # its first import reads files: not on the loop
    from amazon.ion import simpleion  # type: ignore[import-untyped]

    try:
        values = simpleion.loads(text, single_value=False)
    except Exception as exc:  # the library raises several kinds for bad input
        raise IonError(f"cannot read the Ion data: {exc}") from None
    plain = [_plain(v) for v in values]
    if all_rows:
        return plain
    return plain[0] if plain else None


def _plain(value: Any) -> Any:
    from amazon.ion.core import IonType  # type: ignore[import-untyped]

    kind = getattr(value, "ion_type", None)
    if value is None or kind == IonType.NULL or getattr(value, "is_null", False):
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if kind == IonType.BOOL:
        return bool(value)
    if kind == IonType.INT:
        return int(value)
    if kind == IonType.FLOAT:
        return float(value)
    if kind == IonType.DECIMAL:
        number = Decimal(value)
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == IonType.TIMESTAMP:
        text = datetime.isoformat(value)
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if kind in (IonType.BLOB, IonType.CLOB):
        return base64.b64encode(bytes(value)).decode()
    if kind == IonType.SYMBOL:
        return str(getattr(value, "text", value))
    return str(value) if kind == IonType.STRING else value


def dumps(value: Any) -> str:
    """A value as Ion text (maps as structs, lists, strings, numbers, booleans, null)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "+inf" if value > 0 else "-inf"
        text = repr(value)
        return text if "e" in text else text + "e0"
    if isinstance(value, Decimal):
        text = str(value).replace("E", "d")
        return text if "." in text or "d" in text else text + "."
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        fields = ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items())
        return "{" + fields + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(str(value))
