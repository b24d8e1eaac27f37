"""The metastability map: each cell's verdict from its runs, the cells table, and its picture.

A cell x seed gets one verdict word. Paired (the same seed run with and without
the scenario's trigger): `healthy` when both runs end stable or recovered;
`metastable` or `stuck` when the run is fine without the trigger and stays down
after it (the with-trigger outcome's word); `overloaded`, `stuck` or
`metastable` when it is down even without the trigger (the no-trigger run's
word: `metastable` there is a random burst tipping it); `inconclusive`
otherwise; `error` when either run raised. Unpaired, the run's own outcome:
stable and recovered are `healthy`. A cell's verdict is its most common word
over the seeds; a tie goes to the first of `TIE_ORDER` (the more alarming).

The map (`map.png`) is built on `matplotlib.figure.Figure` (no pyplot); matplotlib
is imported only when a map is drawn.
"""
from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import pandas as pd

from .sweep_run import ERROR

if TYPE_CHECKING:  # matplotlib loads when a map is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: The verdict words, in the cells table's order.
WORDS = ("healthy", "metastable", "overloaded", "stuck", "inconclusive", ERROR)
#: A tie between words over a cell's seeds goes to the first of these.
TIE_ORDER = ("metastable", "stuck", "overloaded", "healthy", "inconclusive", ERROR)
COLOURS = {"healthy": "#2ca02c", "metastable": "#ff7f0e", "overloaded": "#d62728", "stuck": "#9467bd",
           "inconclusive": "#9e9e9e", ERROR: "#303030"}
FINE = ("stable", "recovered")
DOWN = ("overloaded", "stuck", "metastable")
#: The figures averaged over a cell's seeds (their with-trigger runs when paired).
STATS = ("degraded_s", "recovery_s", "budget_share")
CELLS, MAP = "cells.csv", "map.png"


def run_verdict(outcome: str) -> str:
    """The verdict of an unpaired run: stable/recovered are healthy, the other outcomes their own word."""
    if outcome in FINE:
        return "healthy"
    return outcome if outcome in WORDS else "inconclusive"


def pair_verdict(without: str, with_trigger: str) -> str:
    """The verdict of a cell x seed from the outcomes of its runs without and with the trigger."""
    if ERROR in (without, with_trigger):
        return ERROR
    if without in DOWN:
        return without
    if without not in FINE:
        return "inconclusive"
    if with_trigger in FINE:
        return "healthy"
    return with_trigger if with_trigger in ("metastable", "stuck") else "inconclusive"


def grid_keys(results: pd.DataFrame) -> list[str]:
    """The grid keys of a results table: its columns before `cell`."""
    columns = list(results.columns)
    return columns[: columns.index("cell")]


def _triggered(frame: pd.DataFrame) -> pd.Series:
    return frame["trigger"].astype(str).str.lower() == "true"


def seed_verdicts(group: pd.DataFrame) -> list[str]:
    """One verdict per seed of a cell's rows (a pair of runs, or one run)."""
    words = []
    for _, runs in group.groupby("seed", sort=True):
        on = runs[_triggered(runs)]["outcome"].tolist()
        off = runs[~_triggered(runs)]["outcome"].tolist()
        if on and off:
            words.append(pair_verdict(str(off[0]), str(on[0])))
        else:
            words.append(run_verdict(str((on or off)[0])))
    return words


def _cell_row(group: pd.DataFrame, keys: Sequence[str]) -> dict[str, Any]:
    counts = Counter(seed_verdicts(group))
    verdict = max(counts, key=lambda w: (counts[w], -TIE_ORDER.index(w)))
    first = group.iloc[0]
    row: dict[str, Any] = {key: first[key] for key in keys}
    row.update(verdict=verdict, seeds=sum(counts.values()))
    row.update({word: counts.get(word, 0) for word in WORDS})
    triggered = _triggered(group)
    runs = group[triggered] if triggered.any() else group
    for name in STATS:
        values = pd.to_numeric(runs[name], errors="coerce")
        row[f"{name}_mean"] = values.mean()
        row[f"{name}_std"] = values.std()
    return row


def cells(results: pd.DataFrame, keys: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """The cells table of a sweep's results: per cell (in the results' order) its grid keys,
    verdict, number of seeds, the count of each verdict word, and the mean and standard
    deviation over seeds of degraded_s, recovery_s and budget_share (of the with-trigger
    runs when paired; NaN where no run has a value, the deviation NaN for one seed)."""
    keys = list(keys) if keys is not None else grid_keys(results)
    rows = [_cell_row(group, keys) for _, group in results.groupby("cell", sort=False)]
    columns = keys + ["verdict", "seeds", *WORDS] + [f"{n}_{s}" for n in STATS for s in ("mean", "std")]
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------- the picture


def _levels(values: pd.Series) -> list[Any]:
    """The distinct values of a key in order of first appearance (the grid's order)."""
    return list(dict.fromkeys(values.tolist()))


def _panels(table: pd.DataFrame, keys: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    """One panel per combination of the keys after the first two (one panel without)."""
    if not keys:
        return [("", table)]
    groups = table.groupby(list(keys), sort=False)
    return [(", ".join(f"{k}={v}" for k, v in zip(keys, values if isinstance(values, tuple) else (values,))),
             frame) for values, frame in groups]


def _draw_panel(ax: "Axes", frame: pd.DataFrame, x_key: str, y_key: Optional[str],
                xs: list[Any], ys: list[Any], label: str) -> None:
    from matplotlib.colors import to_rgba

    image = [[(1.0, 1.0, 1.0, 1.0)] * len(xs) for _ in ys]
    for _, cell in frame.iterrows():
        i = ys.index(cell[y_key]) if y_key else 0
        j = xs.index(cell[x_key])
        image[i][j] = to_rgba(COLOURS[cell["verdict"]])
        text = f"{cell['verdict']}\n{cell[cell['verdict']]}/{cell['seeds']}"
        ax.text(j, i, text, ha="center", va="center", fontsize=7,
                color="black" if cell["verdict"] == "inconclusive" else "white")
    ax.imshow(image, origin="lower", aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(xs)), [str(x) for x in xs], rotation=45 if len(xs) > 6 else 0)
    ax.set_yticks(range(len(ys)), [str(y) for y in ys] if y_key else [""])
    ax.set_xlabel(x_key)
    if y_key:
        ax.set_ylabel(y_key)
    if label:
        ax.set_title(label, fontsize=9)


def draw_map(table: pd.DataFrame, keys: Sequence[str], path: Optional[str | Path] = None,
             title: str = "") -> "Figure":
    """The heat map of a cells table over its first two grid keys (x, then y), one
    panel per value of the others, a colour per verdict and each cell annotated with
    its verdict and how many seeds gave it; saved as PNG when `path` is given."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    x_key, y_key = keys[0], (keys[1] if len(keys) > 1 else None)
    xs, ys = _levels(table[x_key]), (_levels(table[y_key]) if y_key else [None])
    panels = _panels(table, keys[2:])
    width = max(4.0, 0.8 * len(xs) + 2.0)
    fig = Figure(figsize=(width * len(panels), max(3.0, 0.6 * len(ys) + 2.2)), dpi=100, layout="constrained")
    for ax, (label, frame) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        _draw_panel(ax, frame, x_key, y_key, xs, ys, label)
    used = [w for w in WORDS if (table["verdict"] == w).any()]
    fig.legend(handles=[Patch(color=COLOURS[w], label=w) for w in used], loc="outside lower center",
               ncol=len(used), fontsize=8)
    if title:  # wrapped to the figure's width (about 11 characters an inch at this size)
        fig.suptitle(textwrap.fill(title, max(30, int(11 * width * len(panels)))), fontsize=10)
    if path is not None:
        fig.savefig(path)
    return fig


def write_outputs(results: pd.DataFrame, folder: Path, keys: list[str], title: str = "") -> pd.DataFrame:
    """cells.csv and map.png of a finished sweep in `folder`; returns the cells table."""
    table = cells(results, keys)
    table.to_csv(folder / CELLS, index=False)
    if not table.empty:
        draw_map(table, keys, folder / MAP, title)
    return table


def cell_lines(table: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """One line per cell: its values, verdict and the count of each word over its seeds."""
    lines = []
    for row in table.to_dict("records"):
        counts = ", ".join(f"{w} {row[w]}" for w in WORDS if row[w])
        lines.append(f"{'  '.join(f'{k}={row[k]}' for k in keys)}: {row['verdict']} ({counts})")
    return lines
