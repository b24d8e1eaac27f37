"""The cross-field rules run on the raw data, past pydantic's short-circuit.

pydantic runs a table's rules only when all its fields are valid, and a
table's owner's rules only when the table is: a wrong `pool.min` hides that
`pod.warm_connections` exceeds `pool.max`. This pass reads every table of the
raw data (after overrides), keeps each value that is valid on its own, and
runs every rule (rules.py) whose values it could read, so the user sees all
the problems at once. A rule that needs a value it could not read is skipped.
"""
from __future__ import annotations

import typing
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from .errors import Loc, at_paths, unwrap_type
from .models import Scenario

__all__ = ["cross_check"]


class Unknown(Exception):
    """A value a rule needs is missing or invalid in the raw data."""


class _Partial:
    """A table read from raw data: the fields valid on their own; reading another raises Unknown."""

    def __init__(self, values: dict[str, Any]):
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        raise Unknown(name)


def cross_check(data: dict) -> list[tuple[Loc, str]]:
    """The problems every rule finds on the raw scenario data, as (path, line) like translate_errors."""
    problems: list[tuple[Loc, str]] = []
    _table(Scenario, data, (), problems)
    return problems


def _table(model: type[BaseModel], raw: Any, loc: Loc, problems: list[tuple[Loc, str]]) -> _Partial:
    """`raw` read as a `model` table, its rules run (their problems appended)."""
    if not isinstance(raw, dict):
        return _Partial({})
    values = {}
    for name, field in model.model_fields.items():
        if name not in raw:
            if not field.is_required():
                values[name] = field.get_default(call_default_factory=True)
            continue
        try:
            values[name] = _value(model, name, raw[name], (*loc, name), problems)
        except Unknown:
            continue
    part = _Partial(values)
    for rule in getattr(model, "RULES", ()):
        try:
            problems += at_paths(loc, rule(part))
        except Unknown:
            continue
    return part


def _value(model: type[BaseModel], name: str, raw: Any, loc: Loc, problems: list[tuple[Loc, str]]) -> Any:
    """One field's raw value: a table, a list or a dict of tables read as tables, anything else validated alone."""
    tp = unwrap_type(model.model_fields[name].annotation)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    item = unwrap_type(args[-1]) if args else None
    if _is_model(tp):
        return _table(tp, raw, loc, problems)
    if origin is list and _is_model(item) and isinstance(raw, list):
        return [_table(item, x, (*loc, i), problems) for i, x in enumerate(raw)]
    if origin is dict and _is_model(item) and isinstance(raw, dict):
        return {k: _table(item, x, (*loc, k), problems) for k, x in raw.items()}
    try:
        return _adapter(model, name).validate_python(raw)
    except ValidationError:
        raise Unknown(name) from None


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


@cache
def _adapter(model: type[BaseModel], name: str) -> TypeAdapter:
    """The validator of one field alone, with its model's number settings."""
    config = ConfigDict(allow_inf_nan=model.model_config.get("allow_inf_nan", True))
    return TypeAdapter(model.model_fields[name].rebuild_annotation(), config=config)
