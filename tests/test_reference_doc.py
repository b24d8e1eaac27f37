"""docs/reference.md names everything a user scripts against, and nothing that is gone.

The names come from the code, never from a list kept here: the scenario keys
from the pydantic models under `spiralsim.scenario.Scenario`, the timeseries.csv
columns and the summary.json fields from a short run, the event kinds, failure
kinds and alerts from their tables (`spiralsim.vocabulary`, `spiralsim.analysis.alerts`).
Each check looks in the doc's own section for it (the doc is cut at its headings),
mostly at the first cell of that section's table rows, and fails with the list of
what is missing or stale.
"""
from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel

import spiralsim
from spiralsim.analysis.alerts import ALERTS
from spiralsim.scenario import Scenario
from spiralsim.scenario.models import AnalysisConfig
from spiralsim.vocabulary import EVENT_KINDS, FAILURE_KINDS

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference.md"

# A run small enough to be instant that still has a trigger (the incident) and an
# alert (pool_waiting, its sustain cut to 1 s), so the entries of summary.json's
# `triggers` and `alerts` lists exist to be read.
SMALL_RUN = """
duration = "8s"
[analysis]
pool_waiting_for = "1s"
[services.api.traffic]
rate = 100
[services.api.pool]
max = 2
[services.api.endpoints.get]
[[incidents]]
kind = "slow_queries"
factor = 20
start = "2s"
end = "5s"
"""


# ---------------------------------------------------------------- reading the doc


@lru_cache(maxsize=None)
def doc() -> str:
    return REFERENCE.read_text(encoding="utf-8")


@dataclass(frozen=True)
class Section:
    """A heading and the text under it, up to the next heading of the same or a higher level."""

    level: int
    title: str
    text: str


_FENCE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
_HEADING = re.compile(r"^(#{1,6}) +(.+?)[ \t]*$", re.MULTILINE)


def sections(text: str) -> list[Section]:
    """Every section of a markdown text (a `#` inside a fenced block is not a heading)."""
    blanked = _FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    heads = list(_HEADING.finditer(blanked))
    out = []
    for i, h in enumerate(heads):
        level = len(h.group(1))
        end = next((n.start() for n in heads[i + 1:] if len(n.group(1)) <= level), len(text))
        out.append(Section(level, h.group(2), text[h.end():end]))
    return out


def section(title_start: str) -> Section:
    """The one section whose heading starts with `title_start`."""
    found = [s for s in sections(doc()) if s.title.startswith(title_start)]
    assert len(found) == 1, f"docs/reference.md: expected one heading starting {title_start!r}, found {len(found)}"
    return found[0]


def spans(text: str) -> set[str]:
    """The contents of every `backticked` span."""
    return set(re.findall(r"`([^`\n]+)`", text))


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def tables(text: str) -> list[Table]:
    """The markdown tables of a text: header cells and row cells (`\\|` stays inside a cell)."""
    out = []
    block: list[str] = []
    for line in text.splitlines() + [""]:
        if line.lstrip().startswith("|"):
            block.append(line)
            continue
        if len(block) >= 2 and re.fullmatch(r"[\s|:-]+", block[1]):
            out.append(Table(_cells(block[0]), [_cells(b) for b in block[2:]]))
        block = []
    return out


def table(text: str, first_header: str) -> Table:
    """The one table of `text` whose first header cell is `first_header`."""
    found = [t for t in tables(text) if t.header[0] == first_header]
    assert len(found) == 1, f"expected one table headed '| {first_header} |', found {len(found)}"
    return found[0]


def names_in(cell: str) -> list[str]:
    """The backticked names of a table cell, in order (`a`, `b` -> [a, b])."""
    return re.findall(r"`([^`]+)`", cell)


def braces(cell: str) -> list[set[str]]:
    """The key lists written `{a, b, c}` in a cell, each as a set."""
    return [{k.strip() for k in m.split(",")} for m in re.findall(r"`\{([^}`]*)\}`", cell)]


def missing(what: str, names: Any, where: str) -> str:
    return f"{what} missing from {where} of docs/reference.md: {', '.join(sorted(names))}"


# ---------------------------------------------------------------- reading the code


@lru_cache(maxsize=None)
def small_run() -> Any:
    return spiralsim.simulate(spiralsim.scenario_from_toml(SMALL_RUN))


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The models an annotation holds: `M`, `list[M]`, `dict[str, M]`, `M | None`, `Annotated[...]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def _has_dict(annotation: Any) -> bool:
    if typing.get_origin(annotation) is dict:
        return True
    if typing.get_origin(annotation) in (typing.Annotated, typing.Union, types.UnionType):
        return any(_has_dict(a) for a in typing.get_args(annotation))
    return False


@dataclass(frozen=True)
class ModelTable:
    """A scenario model and the TOML path of its table (`*` for a name the user picks)."""

    model: type[BaseModel]
    path: str


def scenario_tables() -> list[ModelTable]:
    """Scenario and every model under it, with its TOML path: `services.*.endpoints.*`, `incidents`."""
    out = [ModelTable(Scenario, "")]
    todo = [out[0]]
    while todo:
        parent = todo.pop(0)
        for name, field in parent.model.model_fields.items():
            for model in _models_in(field.annotation):
                path = ".".join(p for p in (parent.path, name) if p)
                if _has_dict(field.annotation):
                    path += ".*"
                child = ModelTable(model, path)
                out.append(child)
                todo.append(child)
    return out


def _heading_path(title: str) -> str | None:
    """`[services.NAME.pool]` -> services.*.pool; `[[incidents]]` -> incidents; None if no table."""
    m = re.match(r"`\[\[?([\w.]+)\]\]?`", title)
    if not m:
        return None
    return ".".join("*" if part.isupper() else part for part in m.group(1).split("."))


def key_sections() -> dict[str, Section]:
    """The sections of §1 by TOML path ("" for Top level)."""
    out = {"": section("Top level")}
    for s in sections(section("1 Scenario keys").text):
        path = _heading_path(s.title)
        if path is not None:
            out[path] = s
    return out


def section_of(path: str, by_path: dict[str, Section]) -> str:
    """The path of the section documenting a table: its own heading, else its parent's
    (`services.*.traffic.phases` is documented inside `[services.NAME.traffic]`)."""
    while path not in by_path:
        path = path.rpartition(".")[0]
    return path


# ---------------------------------------------------------------- 1 scenario keys


def test_every_scenario_key_is_in_its_section() -> None:
    """Every field of every scenario model is named, backticked, in the section of its
    table (`[services.NAME.pool]` for PoolConfig, the Top level for Scenario; a list of
    tables without a heading of its own, like `phases` or `schedule`, in its parent's).
    A field that is a table with its own heading (`services.NAME.client`) counts as
    named by that heading."""
    by_path = key_sections()
    problems = []
    for t in scenario_tables():
        where = section_of(t.path, by_path)
        named = spans(by_path[where].text)
        for name in t.model.model_fields:
            child = ".".join(p for p in (t.path, name) if p)
            if name in named or child in by_path or child + ".*" in by_path:
                continue
            heading = by_path[where].title if where else "Top level"
            problems.append(f"{t.model.__name__}.{name} (`{child.replace('*', 'NAME')}`) under {heading!r}")
    assert not problems, "scenario keys missing from docs/reference.md §1:\n  " + "\n  ".join(problems)


def test_every_documented_scenario_key_exists() -> None:
    """Conversely, every key in the first column of a `| key |` table of a table's section
    is a field of a model documented there (a renamed or removed key is stale)."""
    by_path = key_sections()
    fields: dict[str, set[str]] = {}
    for t in scenario_tables():
        fields.setdefault(section_of(t.path, by_path), set()).update(t.model.model_fields)
    problems = []
    for path, s in by_path.items():
        for tab in tables(s.text):
            if tab.header[0] != "key":
                continue
            for row in tab.rows:
                for key in names_in(row[0]):
                    if key not in fields.get(path, set()):
                        problems.append(f"`{key}` under {s.title!r}")
    assert not problems, "keys in docs/reference.md §1 that no scenario model has:\n  " + "\n  ".join(problems)


# ---------------------------------------------------------------- 2 timeseries.csv


def _documented_columns() -> set[str]:
    """The first cells of §2's column table; `failures_A` … `failures_B` stands for the
    failure kinds from A to B in the order of FAILURE_KINDS."""
    order = [k.column for k in FAILURE_KINDS]
    out: set[str] = set()
    for row in table(section("2 timeseries.csv").text, "column").rows:
        names = names_in(row[0])
        if "…" in row[0]:
            first, last = names
            assert first in order and last in order, f"§2: range {row[0]} is not of failure kinds"
            names = order[order.index(first):order.index(last) + 1]
        out.update(names)
    return out


def test_every_timeseries_column_is_documented() -> None:
    """Every column of timeseries.csv (the keys of `Result.timeseries`) has a row in the
    column table of "## 2 timeseries.csv", and every row names a real column."""
    columns = set(small_run().timeseries)
    documented = _documented_columns()
    assert not columns - documented, missing("timeseries.csv columns", columns - documented, "§2's table")
    assert not documented - columns, f"§2 of docs/reference.md lists columns that do not exist: " \
                                     f"{', '.join(sorted(documented - columns))}"


# ---------------------------------------------------------------- 3 events.csv


def test_events_table_lists_exactly_the_event_kinds() -> None:
    """The kind table of "## 3 events.csv" has a row for every kind of EVENT_KINDS, and
    no kind that EVENT_KINDS does not have."""
    documented = {name for row in table(section("3 events.csv").text, "kind").rows for name in names_in(row[0])}
    kinds = set(EVENT_KINDS)
    assert not kinds - documented, missing("event kinds", kinds - documented, "§3's table")
    assert not documented - kinds, f"§3 of docs/reference.md lists event kinds that no longer exist: " \
                                   f"{', '.join(sorted(documented - kinds))}"


# ---------------------------------------------------------------- 4 summary.json


def _summary_rows() -> dict[str, str]:
    """§4's field table by dotted path: `services.NAME.requests` then `.successes` go on
    with the prefix `services.NAME.`; each path maps to its meaning cell."""
    out: dict[str, str] = {}
    prefix = ""
    for row in table(section("4 summary.json").text, "field").rows:
        for name in names_in(row[0]):
            if name.startswith("."):
                path = prefix + name[1:]
            else:
                path = name
                prefix = name.rpartition(".")[0] + "." if "." in name else ""
            out[path] = row[1]
    return out


def _summary_fields(summary: dict[str, Any]) -> dict[str, Any]:
    """summary.json's fields as documented paths (a service's name read as NAME) and values."""
    out = {}
    for key, value in summary.items():
        if key == "services":
            for sub, v in next(iter(value.values())).items():
                out[f"services.NAME.{sub}"] = v
        elif key == "database":
            out.update({f"database.{sub}": v for sub, v in value.items()})
        else:
            out[key] = value
    return out


def test_every_summary_field_is_documented() -> None:
    """Every field of summary.json (top level, `services.NAME.*`, `database.*`) has a row
    in the field table of "## 4 summary.json", and every row names a real field."""
    fields = _summary_fields(small_run().summary)
    documented = _summary_rows()
    assert not fields.keys() - documented, missing("summary.json fields", fields.keys() - documented, "§4's table")
    assert not documented.keys() - fields.keys(), \
        f"§4 of docs/reference.md lists fields that do not exist: {', '.join(sorted(documented.keys() - fields))}"


def test_summary_sub_keys_are_documented() -> None:
    """Each nested object and list entry of summary.json (`latency_ms`, `p99_ms`, a
    `triggers` entry, an `alerts` entry, ...) is written `{key, ...}` in its row with
    exactly its keys; `failures` has one key per failure kind (§5)."""
    summary = small_run().summary
    assert summary["triggers"] and summary["alerts"], "the small run should have a trigger and an alert"
    documented = _summary_rows()
    problems = []
    for path, value in _summary_fields(summary).items():
        if isinstance(value, list):
            value = value[0]
        if not isinstance(value, dict) or path not in documented:
            continue
        if path == "services.NAME.failures":
            assert list(value) == [k.name for k in FAILURE_KINDS]
            continue
        written = braces(documented[path])
        if set(value) not in written:
            problems.append(f"`{path}`: has {{{', '.join(value)}}}, the doc writes "
                            f"{' / '.join('{' + ', '.join(sorted(w)) + '}' for w in written) or 'no {...}'}")
    assert not problems, "summary.json sub-keys not matching §4 of docs/reference.md:\n  " + "\n  ".join(problems)


# ---------------------------------------------------------------- 5 failure kinds


def test_failure_kinds_table_matches_the_code() -> None:
    """The table of "## 5 Failure kinds" has one row per FAILURE_KINDS entry, in its order
    (the order of the `failures_*` columns), with the kind's text as the first backticked
    span of the text cell and `yes` / `no` in the retried cell as the kind is retryable."""
    rows = table(section("5 Failure kinds").text, "kind").rows
    documented = [names_in(row[0])[0] for row in rows]
    names = [k.name for k in FAILURE_KINDS]
    assert not set(names) - set(documented), missing("failure kinds", set(names) - set(documented), "§5's table")
    assert documented == names, f"§5 of docs/reference.md lists the kinds {documented}, the code (in order) {names}"
    problems = []
    for kind, row in zip(FAILURE_KINDS, rows):
        text = names_in(row[2])
        if not text or text[0] != kind.text:
            problems.append(f"{kind.name}: text {text[0] if text else row[2]!r}, the code says {kind.text!r}")
        retried = row[3].strip("* ")
        if retried != ("yes" if kind.retryable else "no"):
            problems.append(f"{kind.name}: retried {retried!r}, the code says retryable={kind.retryable}")
    assert not problems, "§5 of docs/reference.md disagrees with FAILURE_KINDS:\n  " + "\n  ".join(problems)


# ---------------------------------------------------------------- alerts


def test_alerts_table_matches_the_code() -> None:
    """The table of "### Alerts" has a row for every alert of ALERTS and no other, its
    `per` cell its scope (service / database), its sustain cell the alert's `[analysis]`
    key with that key's default in seconds, e.g. `pool_waiting_for` (10 s)."""
    rows = {names_in(row[0])[0]: row for row in table(section("Alerts").text, "name").rows}
    names = {a.name for a in ALERTS}
    assert not names - rows.keys(), missing("alerts", names - rows.keys(), "the Alerts table")
    assert not rows.keys() - names, f"the Alerts table of docs/reference.md lists alerts that do not exist: " \
                                    f"{', '.join(sorted(rows.keys() - names))}"
    problems = []
    for alert in ALERTS:
        _, per, _, sustain = rows[alert.name]
        if not per.startswith(alert.scope):
            problems.append(f"{alert.name}: per {per!r}, the code's scope is {alert.scope!r}")
        default = AnalysisConfig.model_fields[alert.sustain].default
        if sustain != f"`{alert.sustain}` ({default:g} s)":
            problems.append(f"{alert.name}: sustain {sustain!r}, the code's is `{alert.sustain}` ({default:g} s)")
    assert not problems, "the Alerts table of docs/reference.md disagrees with ALERTS:\n  " + "\n  ".join(problems)


def test_summary_alert_order_is_the_code_order() -> None:
    """§4's `alerts` row gives the order of same-time firings: the order of ALERTS."""
    written = [n for n in names_in(_summary_rows()["alerts"]) if n in {a.name for a in ALERTS}]
    order = [a.name for a in ALERTS]
    assert written == order, f"§4 of docs/reference.md orders same-time alerts {written}, the code {order}"


# ---------------------------------------------------------------- module paths


def test_module_paths_exist() -> None:
    """Every `spiralsim/...` path the doc names is a file or folder of the package."""
    paths = set(re.findall(r"`(spiralsim/[\w/.]*)`", doc()))
    gone = sorted(p for p in paths if not (ROOT / p).exists())
    assert not gone, f"docs/reference.md names module paths that do not exist: {', '.join(gone)}"
