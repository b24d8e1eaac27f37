"""Reading and writing scenario files: `--set` overrides on the raw data, loading
with every error at once, and the resolved TOML with every default written out.
The models themselves are in `models.py`."""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ValidationError

from .crosscheck import cross_check
from .durations import format_duration
from .errors import (
    ScenarioError,
    find_dangling_references,
    find_unsupported,
    in_file_order,
    show,
    translate_errors,
)
from .models import DurationMark, Scenario

# ---------------------------------------------------------------- overrides


def _parse_value(raw: str) -> Any:
    """A --set value: a TOML value if it parses as one, else the bare string."""
    text = raw.strip()
    try:
        parsed = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text
    return parsed["v"] if list(parsed) == ["v"] else text


def _set_path(root: dict, segs: list[str], value: Any) -> None:
    """Set root[segs...] = value, creating missing tables (lists for digit keys)."""
    cur: Any = root
    for depth, seg in enumerate(segs):
        last = depth == len(segs) - 1
        here = ".".join(segs[: depth + 1])
        if isinstance(cur, list):
            if not seg.isdigit():
                raise ValueError(f"{'.'.join(segs[:depth])} is a list; index it with a number")
            index = int(seg)
            if index > len(cur):
                raise ValueError(f"index {index} out of range ({len(cur)} entries)")
            if index == len(cur):
                cur.append(value if last else ([] if segs[depth + 1].isdigit() else {}))
            elif last:
                cur[index] = value
            key: Any = index
        else:
            if last:
                cur[seg] = value
            elif seg not in cur:
                cur[seg] = [] if segs[depth + 1].isdigit() else {}
            key = seg
        if last:
            return
        cur = cur[key]
        if not isinstance(cur, (dict, list)):
            raise ValueError(f"{here} is {show(cur)}, not a table")


def _unset_path(root: dict, segs: list[str]) -> None:
    """Remove root[segs...] (`PATH=null`): its default applies again; an entry of a list goes."""
    cur: Any = root
    for depth, seg in enumerate(segs):
        here = ".".join(segs[: depth + 1])
        key: Any = int(seg) if isinstance(cur, list) and seg.isdigit() else seg
        present = (0 <= key < len(cur)) if isinstance(cur, list) and isinstance(key, int) \
            else isinstance(cur, dict) and key in cur
        if not present:
            raise ValueError(f"nothing to remove: {here} is not set in the scenario (its default applies already)")
        if depth == len(segs) - 1:
            del cur[key]
            return
        cur = cur[key]
        if not isinstance(cur, (dict, list)):
            raise ValueError(f"{here} is {show(cur)}, not a table")


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """A copy of raw scenario data with `PATH=VALUE` overrides applied.

    PATH is dotted (`services.api.pool.max`, `incidents.0.factor`); VALUE is a
    TOML value if it parses as one (`5`, `true`, `"1s"`), else a bare string;
    `null` (TOML has none; as in Helm) removes the key, so its default applies.
    Raises ScenarioError listing every malformed override.
    """
    result = copy.deepcopy(data)
    errors = []
    for item in overrides:
        path, sep, raw = item.partition("=")
        path = path.strip()
        segs = path.split(".")
        if not sep or not path or any(not s.strip() for s in segs):
            errors.append(f"--set {item!r}: expected PATH=VALUE, e.g. services.api.pool.max=5")
            continue
        try:
            if raw.strip() == "null":
                _unset_path(result, [s.strip() for s in segs])
            else:
                _set_path(result, [s.strip() for s in segs], _parse_value(raw))
        except ValueError as exc:
            errors.append(f"--set {path}: {exc}")
    if errors:
        raise ScenarioError(errors)
    return result


# ---------------------------------------------------------------- loading


def scenario_from_dict(data: dict, overrides: Sequence[str] = (), seed: int | None = None,
                       default_name: str = "scenario") -> Scenario:
    """Validate raw scenario data (as parsed from TOML) after applying overrides and seed.

    Raises ScenarioError with every problem found, one line each, including
    those pydantic's short-circuit hides (see crosscheck.py).
    """
    data = apply_overrides(data, overrides)
    if seed is not None:
        data["seed"] = seed
    data.setdefault("name", default_name)
    unsupported, covered = find_unsupported(data)
    errors: list[tuple[tuple[str | int, ...], str]] = []
    scenario = None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        errors = translate_errors(Scenario, exc, skip=covered)
        errors += _hidden(data, errors, covered)
    errors += unsupported + find_dangling_references(data)
    if errors or scenario is None:
        raise ScenarioError(in_file_order(data, errors) or ["(top level): invalid scenario"])
    return scenario


def _hidden(data: dict, errors: list[tuple[tuple[str | int, ...], str]],
            covered: Sequence[tuple[str | int, ...]]) -> list[tuple[tuple[str | int, ...], str]]:
    """The cross-field problems pydantic did not reach: cross_check's lines not already in `errors`."""
    seen = {line for _, line in errors}
    return [(loc, line) for loc, line in cross_check(data)
            if line not in seen and not any(loc[: len(c)] == c for c in covered)]


def _parse_toml(text: str, source: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError([f"{source}: invalid TOML: {exc}"]) from None


def scenario_from_toml(text: str, overrides: Sequence[str] = (), seed: int | None = None,
                       default_name: str = "scenario") -> Scenario:
    """Validate a scenario given as TOML text (see scenario_from_dict)."""
    return scenario_from_dict(_parse_toml(text, "<toml>"), overrides, seed, default_name)


def load_scenario(path: str | os.PathLike, overrides: Sequence[str] = (), seed: int | None = None) -> Scenario:
    """Load and validate a scenario file; `name` defaults to the file's stem."""
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ScenarioError([f"{file}: no such file"]) from None
    except IsADirectoryError:
        raise ScenarioError([f"{file}: is a directory, not a scenario file"]) from None
    except OSError as exc:
        raise ScenarioError([f"{file}: cannot read ({exc.strerror})"]) from None
    except UnicodeDecodeError:
        raise ScenarioError([f"{file}: not UTF-8 text"]) from None
    return scenario_from_dict(_parse_toml(text, str(file)), overrides, seed, default_name=file.stem)


# ---------------------------------------------------------------- writing


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        out = {}
        for name, field in type(value).model_fields.items():
            item = getattr(value, name)
            if item is None:
                continue  # TOML has no null; absent means the default (None)
            if any(isinstance(m, DurationMark) for m in field.metadata):
                out[name] = format_duration(item)
            else:
                out[name] = _plain(item)
        return out
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def scenario_to_toml(scenario: Scenario) -> str:
    """The resolved scenario as TOML with every default written out;
    `scenario_from_toml(scenario_to_toml(s)) == s`."""
    return tomli_w.dumps(_plain(scenario))
