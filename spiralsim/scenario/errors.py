"""Scenario errors: one line per problem, `<dotted.path>: <problem>`.

Holds the table of scenario keys the simulator does not implement yet, and
the translation of pydantic's errors into our one-line messages.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

__all__ = [
    "HERE",
    "Loc",
    "NOT_SUPPORTED_YET",
    "ScenarioError",
    "format_path",
    "did_you_mean",
    "find_unsupported",
    "find_dangling_references",
    "translate_errors",
    "at_paths",
    "in_file_order",
    "unwrap_type",
]

Loc = tuple[str | int, ...]

#: In a rule's message, the dotted path of the table the rule belongs to (with its dot).
HERE = "{here}."

#: Keys of SCENARIO.md the simulator does not implement yet: path pattern -> what it is.
#: `*` matches one table key or list index; `key=value` matches only that value and
#: makes the enclosing table unsupported. Delete an entry when it is implemented.
NOT_SUPPORTED_YET: dict[str, str] = {
}


class ScenarioError(Exception):
    """Every problem of a scenario, one line each in `.errors`."""

    def __init__(self, errors: Sequence[str]):
        self.errors = [" ".join(str(line).split()) for line in errors]
        super().__init__("\n".join(self.errors))


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def format_path(loc: Sequence[str | int]) -> str:
    """('services', 'api', 'phases', 0) -> 'services.api.phases[0]'."""
    out = ""
    for seg in loc:
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            key = seg if _PLAIN_KEY.fullmatch(seg) else f'"{seg}"'
            out += f".{key}" if out else key
    return out


def show(value: Any) -> str:
    """A value as the user wrote it, short."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict):
        text = "a table"
    else:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """'; did you mean X?' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _matches(pattern: str, path: Loc, value: Any) -> bool:
    key_part, _, wanted = pattern.partition("=")
    segs = key_part.split(".")
    if len(segs) != len(path):
        return False
    if not all(s == "*" or s == p for s, p in zip(segs, path)):
        return False
    return not wanted or value == wanted


def _walk(data: Any, path: Loc = ()) -> Iterator[tuple[Loc, Any]]:
    if isinstance(data, dict):
        items: Any = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return
    for key, value in items:
        yield (*path, key), value
        yield from _walk(value, (*path, key))


def find_unsupported(data: dict) -> tuple[list[tuple[Loc, str]], list[Loc]]:
    """Errors for keys of later issues, and the paths whose errors they replace."""
    errors: list[tuple[Loc, str]] = []
    covered: list[Loc] = []
    for path, value in _walk(data):
        if any(path[: len(c)] == c for c in covered):
            continue
        for pattern, reason in NOT_SUPPORTED_YET.items():
            if _matches(pattern, path, value):
                errors.append((path, f"{format_path(path)}: not supported yet ({reason})"))
                covered.append(path[:-1] if "=" in pattern else path)
                break
    return errors, covered


def find_dangling_references(data: dict) -> list[tuple[Loc, str]]:
    """Incidents that name services or endpoints the file does not define."""
    services = data.get("services")
    incidents = data.get("incidents")
    if not isinstance(services, dict) or not isinstance(incidents, list):
        return []
    names = [str(n) for n in services]
    errors: list[tuple[Loc, str]] = []
    for i, incident in enumerate(incidents):
        if not isinstance(incident, dict):
            continue
        wanted = incident.get("services")
        targets = names
        if isinstance(wanted, list):
            for name in wanted:
                if isinstance(name, str) and name not in services:
                    hint = did_you_mean(name, names) or f" (services: {', '.join(names)})"
                    loc = ("incidents", i, "services")
                    errors.append((loc, f"{format_path(loc)}: unknown service {name!r}{hint}"))
            targets = [n for n in wanted if isinstance(n, str) and n in services]
        endpoints = incident.get("endpoints")
        if isinstance(endpoints, list) and targets:
            known: list[str] = []
            for name in targets:
                table = services[name].get("endpoints") if isinstance(services[name], dict) else None
                known += [str(e) for e in table if e not in known] if isinstance(table, dict) else []
            for name in endpoints:
                if isinstance(name, str) and name not in known:
                    hint = did_you_mean(name, known) or f" (endpoints: {', '.join(known)})"
                    loc = ("incidents", i, "endpoints")
                    errors.append((loc, f"{format_path(loc)}: unknown endpoint {name!r}"
                                        f" in services {', '.join(targets)}{hint}"))
    return errors


def unwrap_type(tp: Any) -> Any:
    """A field's type without Annotated and without `| None`."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0]
        else:
            return tp


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class found by following loc from root, if any."""
    tp: Any = root
    for seg in loc:
        tp = unwrap_type(tp)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(seg))
            if field is None:
                return None
            tp = field.annotation
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        elif origin is list:
            tp = typing.get_args(tp)[0]
        else:
            return None
    tp = unwrap_type(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


_TYPE_NAMES = {
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "list_type": "a list",
}
_COMPARISONS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}


def _problem(root: type[BaseModel], err: dict[str, Any]) -> tuple[Loc, str]:
    kind, loc, value = err["type"], tuple(err["loc"]), err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        known = list(model.model_fields) if model else []
        hint = did_you_mean(str(loc[-1]), known)
        if not hint and known:
            hint = f" (known keys: {', '.join(known)})"
        return loc, f"unknown key{hint}"
    if kind == "missing":
        return loc, "required key is missing"
    if kind in _TYPE_NAMES:
        return loc, f"expected {_TYPE_NAMES[kind]}, got {show(value)}"
    if kind in _COMPARISONS:
        bound = next(iter(ctx.values()))
        bound = int(bound) if isinstance(bound, float) and bound.is_integer() else bound
        return loc, f"must be {_COMPARISONS[kind]} {bound}, got {show(value)}"
    if kind == "finite_number":
        return loc, f"must be a finite number, got {show(value)}"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", ctx.get("expected", ""))
        return loc, f"must be one of {', '.join(choices)}, got {show(value)}{did_you_mean(str(value), choices)}"
    if kind == "too_short":
        return loc, f"must have at least {ctx.get('min_length', 1)} entry"
    if kind == "value_error":
        return loc, str(ctx.get("error", err["msg"]))
    return loc, f"{err['msg']}, got {show(value)}"


def translate_errors(root: type[BaseModel], exc: ValidationError,
                     skip: Sequence[Loc] = ()) -> list[tuple[Loc, str]]:
    """pydantic's errors as our lines; errors under a `skip` path are dropped.

    A custom error of type "at_paths" carries ctx["problems"]: a list of
    (sub-path, message) pairs relative to the model that raised it.
    """
    lines: list[tuple[Loc, str]] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if any(loc[: len(s)] == s for s in skip):
            continue
        if err["type"] == "at_paths":
            lines += at_paths(loc, err["ctx"]["problems"])
            continue
        loc, message = _problem(root, err)
        lines.append((loc, f"{format_path(loc) or '(top level)'}: {message}"))
    return lines


def at_paths(loc: Loc, problems: Sequence[tuple[Loc, str]]) -> list[tuple[Loc, str]]:
    """A table's problems (sub-path, message) as lines at `loc`, with `HERE` spelled out."""
    here = f"{format_path(loc)}." if loc else ""
    return [((*loc, *sub), f"{format_path((*loc, *sub)) or '(top level)'}: {message.replace(HERE, here)}")
            for sub, message in problems]


def in_file_order(data: dict, errors: Sequence[tuple[Loc, str]]) -> list[str]:
    """The error lines sorted by where their key (or its nearest existing parent) is in the file."""
    position = {path: n for n, (path, _) in enumerate(_walk(data))}

    def key(item: tuple[Loc, str]) -> int:
        loc = item[0]
        for cut in range(len(loc), 0, -1):
            if loc[:cut] in position:
                return position[loc[:cut]]
        return -1

    return [line for _, line in sorted(errors, key=key)]
