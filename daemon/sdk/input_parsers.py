"""Parsers of raw input values (text from a form, YAML from a flow, JSON from a client)
into the values an execution stores, one per Kestra input type; each raises
ValueError("is not ...") naming what it expected."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson

from daemon.sdk import yamlpos
from daemon.sdk.durations import parse_duration

FILE_SCHEMES = ("kestra", "nsfile", "file")


def as_text(value: Any) -> Any:
    """YAML reads `- yes` as True and `- 2024` as 2024; Kestra compares choices as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: as_text(v) for k, v in value.items()}
    return value


def show_value(value: Any, secret: bool = False) -> str:
    text = "'******'" if secret else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]{1,20}", value.strip()):
        return int(value)
    raise ValueError("is not an INT")


def parse_float(value: Any) -> float:
    number = math.nan
    if isinstance(value, float) or (
        isinstance(value, int) and not isinstance(value, bool) and abs(value).bit_length() <= 1024
    ):
        number = float(value)
    elif isinstance(value, str) and re.fullmatch(
        r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?", value.strip()
    ):
        number = float(value)
    if not math.isfinite(number):
        raise ValueError("is not a FLOAT")
    return number


def parse_datetime(value: Any) -> datetime:
    parsed = value if isinstance(value, datetime) else None
    if isinstance(value, str) and len(value.strip()) > len("2042-04-02"):  # a time is required
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            parsed = None
    if parsed is None:
        raise ValueError("is not a DATETIME (expected ISO-8601, e.g. 2042-04-02T04:20:42Z)")
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once in UTC") from None


def parse_date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(value.strip())
    except (AttributeError, ValueError):
        raise ValueError("is not a DATE (expected e.g. 2042-12-03)") from None


def parse_time(value: Any) -> time:
    """An int is seconds since midnight: YAML 1.1 reads an unquoted 14:19:00 as 51540."""
    parsed = value if isinstance(value, time) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 86400:
        parsed = (datetime.min + timedelta(seconds=value)).time()
    elif isinstance(value, str):
        try:
            parsed = time.fromisoformat(value.strip())
        except ValueError:
            parsed = None
    if parsed is None or parsed.tzinfo is not None:
        raise ValueError("is not a TIME (expected e.g. 10:15:30, without a time zone)")
    return parsed


def parse_duration_value(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return timedelta(seconds=value)
        return parse_duration(value.strip())
    except OverflowError:
        raise ValueError("is a DURATION out of range (at most 999999999 days)") from None
    except (AttributeError, ValueError):
        raise ValueError("is not a DURATION (expected ISO-8601, e.g. PT5M6S)") from None


def dump_datetime(value: datetime) -> str:
    return f"{value.replace(tzinfo=None).isoformat()}Z"


def parse_structured(text: str) -> Any:
    """JSON first, which keeps "10:00:00" text; then YAML, which Kestra also takes for lists."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("is nested too deeply") from None
    except json.JSONDecodeError:
        pass
    try:
        return yaml_value(text)
    except yamlpos.YamlProblem:
        return None


def yaml_value(text: str) -> Any:
    """The flow loader's YAML reader, which bounds nesting and aliases: a value from a
    caller is no more trusted than a flow file (an alias bomb must not hang the daemon)."""
    return yamlpos.load(text, core_schema=False)[0]


def plain(value: Any) -> Any:
    """YAML gives dates and non-text keys; executions store JSON."""
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    return [plain(v) for v in value] if isinstance(value, list | tuple) else value


def parse_json(value: Any) -> Any:
    try:
        return json.loads(value) if isinstance(value, str) else value
    except RecursionError:
        raise ValueError("is not valid JSON (nested too deeply)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None


def parse_yaml(value: Any) -> Any:
    try:
        return plain(yaml_value(value) if isinstance(value, str) else value)
    except yamlpos.YamlProblem as exc:
        raise ValueError(
            f"is not valid YAML ({exc.message.removeprefix('invalid YAML: ')} "
            f"at line {exc.line} column {exc.column})"
        ) from None


def parse_uri(value: Any) -> str:
    text = value.strip() if isinstance(value, str) else ""
    parts = urlsplit(text) if text and not re.search(r"\s", text) else None
    if parts is None or not parts.scheme or not (parts.netloc or parts.scheme in FILE_SCHEMES):
        raise ValueError("is not a URI (expected e.g. https://example.com/data.csv)")
    return text


def parse_email(value: Any) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not re.fullmatch(r"[A-Za-z0-9_!#$%&'*+/=?`{|}~^.-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*", text):
        raise ValueError("is not an email address")
    return text


def parse_file_uri(value: Any) -> str:
    """A FILE value already stored, or a default naming a namespace or local file."""
    if isinstance(value, str) and urlsplit(value).scheme in FILE_SCHEMES:
        return value
    raise ValueError("is not a file URI (expected kestra:///..., nsfile:///... or file:///...)")


def check_storable(value: Any) -> None:
    """Executions are stored as JSON by orjson: a number past 64 bits or a lone surrogate
    (from a command line in another encoding) is refused here, not by the store."""
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"holds a value podium cannot store ({exc})") from None
