"""Parameter schemas: declared once per method, used to build web forms and to validate values.

Values arrive as strings from HTML forms ("0.001", "on") or as JSON numbers and booleans from the API and the
CLI, so validation coerces both and reports errors a non-expert can act on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PARAM_TYPES = ("int", "float", "bool", "choice", "str")

_TRUE = {"true", "1", "yes", "y", "on", "t"}
_FALSE = {"false", "0", "no", "n", "off", "f"}


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # "int" | "float" | "bool" | "choice" | "str"
    default: Any
    help: str
    label: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple = ()
    optional: bool = False  # None or "" is allowed and means "no value" (the value becomes None)
    # Text parameters: at most this many characters, and (when set) a regular expression the lower-cased text
    # must match whole, so a value the worker cannot read is refused when the job is submitted.
    max_length: int = 1000
    pattern: str = ""
    pattern_hint: str = ""  # what to write instead, said when the pattern does not match

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise ValueError(f"Param {self.name!r}: type must be one of {PARAM_TYPES}, not {self.type!r}")
        if self.type == "choice" and not self.choices:
            raise ValueError(f"Param {self.name!r}: a choice parameter needs choices")

    @property
    def display_label(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()


class ParamError(ValueError):
    """One value failed validation; the message is shown next to the form field."""


def _fmt(number: float) -> str:
    if isinstance(number, bool):
        return str(number).lower()
    if float(number).is_integer() and abs(number) < 1e15:
        return str(int(number))
    return f"{number:g}"


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else _fmt(value) if isinstance(value, (int, float)) else repr(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ParamError(f"must be a whole number (got {_shown(value)})")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise ParamError(f"must be a whole number (got {_shown(value)})")
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            raise ParamError(f"must be a whole number (got {value!r})") from None
        if math.isfinite(number) and number.is_integer():  # "3.0" and "1e3" are whole numbers too
            return int(number)
        raise ParamError(f"must be a whole number (got {value!r})")
    raise ParamError(f"must be a whole number (got {_shown(value)})")


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ParamError(f"must be a number (got {_shown(value)})")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ParamError(f"must be a number (got {value!r})") from None
    else:
        raise ParamError(f"must be a number (got {_shown(value)})")
    if not math.isfinite(number):
        raise ParamError(f"must be a finite number (got {_shown(value)})")
    return number


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ParamError(f"must be true or false (got {_shown(value)})")


def _to_choice(param: Param, value: Any) -> Any:
    if value in param.choices:
        return value
    for choice in param.choices:  # forms send "8" for the choice 8
        if str(choice) == str(value).strip():
            return choice
    options = ", ".join(str(c) for c in param.choices)
    raise ParamError(f"must be one of: {options} (got {_shown(value)})")


def _check_bounds(param: Param, number: float) -> None:
    low, high = param.min, param.max
    if low is not None and high is not None:
        if not low <= number <= high:
            raise ParamError(f"must be between {_fmt(low)} and {_fmt(high)} (got {_fmt(number)})")
    elif low is not None and number < low:
        raise ParamError(f"must be at least {_fmt(low)} (got {_fmt(number)})")
    elif high is not None and number > high:
        raise ParamError(f"must be at most {_fmt(high)} (got {_fmt(number)})")


def coerce_value(param: Param, value: Any) -> Any:
    """Convert one submitted value to the parameter's type, or raise ParamError."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        if param.optional:
            return None
        # A cleared form field means "I don't mind": use the default rather than fail.
        return param.default
    if param.type == "int":
        result = _to_int(value)
    elif param.type == "float":
        result = _to_float(value)
    elif param.type == "bool":
        return _to_bool(value)
    elif param.type == "choice":
        return _to_choice(param, value)
    else:
        if not isinstance(value, str):
            raise ParamError(f"must be text (got {_shown(value)})")
        text = value.strip()
        if len(text) > param.max_length:
            raise ParamError(f"must be at most {param.max_length} characters (got {len(text):,})")
        if param.pattern and not re.fullmatch(param.pattern, text.lower()):
            raise ParamError(f"{_shown(text)} is not understood; {param.pattern_hint or 'see the help'}")
        return text
    _check_bounds(param, result)
    return result


def validate_params(schema: Sequence[Param], values: Mapping[str, Any] | None) -> tuple[dict, dict[str, str]]:
    """Return (clean values with defaults for missing keys, errors as {name: message})."""
    values = dict(values or {})
    by_name = {p.name: p for p in schema}
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key in values:
        if key not in by_name:
            expected = ", ".join(by_name) or "(none)"
            errors[str(key)] = f"unknown parameter {str(key)!r}; expected one of: {expected}"
    for param in schema:
        if param.name not in values:
            clean[param.name] = param.default
            continue
        try:
            clean[param.name] = coerce_value(param, values[param.name])
        except ParamError as exc:
            errors[param.name] = str(exc)
    return clean, errors


def format_errors(errors: Mapping[str, str]) -> str:
    """One line for logs and CLI output: "epochs: must be ...; r: must be ..."."""
    return "; ".join(f"{name}: {message}" for name, message in errors.items())


def schema_as_json(schema: Sequence[Param]) -> list[dict]:
    return [
        {
            "name": p.name,
            "type": p.type,
            "default": p.default,
            "help": p.help,
            "label": p.display_label,
            "min": p.min,
            "max": p.max,
            "choices": list(p.choices),
            "optional": p.optional,
            **({"max_length": p.max_length, "pattern": p.pattern} if p.type == "str" else {}),
        }
        for p in schema
    ]
