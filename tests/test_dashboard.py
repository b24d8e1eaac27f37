"""The dashboard: its panels (the empty ones left out), the key to every shade and line,
the report's numbered rows on the top strip (inside it, never overlapping), the impact window."""
from __future__ import annotations

import copy
import dataclasses
import io
import struct
from itertools import combinations
from pathlib import Path

import pytest
from shipped import run
from synthetic_run import build, fake_scenario, leak, spiral

from spiralsim.metrics import Event
from spiralsim.report.dashboard import dashboard
from spiralsim.report.run_view import RunView
from spiralsim.report.timeline import timeline
from spiralsim.vocabulary import EVENT_KINDS

SCENARIOS = Path(__file__).parent.parent / "scenarios"
EVENTS = (
    Event(120.0, "", "incident_start", "slow_queries x100"),
    Event(121.5, "api", "first_failure", "acquire_timeout: timeout exceeded when trying to connect"),
    Event(180.0, "", "incident_end", "slow_queries x100"),
)
LEAK_EVENTS = (
    Event(3600.0, "api", "first_leak", "GET /orders: no finally"),
    Event(4000.0, "api", "first_orphan", "POST /pay"),
    Event(5000.0, "api", "pod_crash", "api-0 crashed: unhandled 'error' event; restart in 10 s"),
    Event(6000.0, "", "incident_start", "db_restart"),
    Event(6001.0, "api", "pool_error", "Connection terminated unexpectedly"),
    Event(6030.0, "", "incident_end", "db_restart"),
)


@pytest.fixture(scope="module")
def result():
    return build(fake_scenario(incidents=[(120, 180)]), spiral(120, 250), EVENTS)


@pytest.fixture(scope="module")
def leaky():
    return build(fake_scenario(duration=14400.0), leak(10800.0), LEAK_EVENTS)


def panels(fig) -> list[str]:
    return [ax.get_label() for ax in fig.axes if ax.get_label()]


def panel(fig, name: str):
    return next(ax for ax in fig.axes if ax.get_label() == name)


def legend_labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def key_labels(fig) -> list[str]:
    key = next(leg for sub in fig.subfigs for leg in sub.legends if leg.get_gid() == "key")
    return [t.get_text() for t in key.get_texts()]


def png_size(fig) -> tuple[int, int]:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return struct.unpack(">II", buf.getvalue()[16:24])


def impact_spans(fig) -> list[tuple[str, float, float]]:
    return [(ax.get_label(), p.get_x(), p.get_x() + p.get_width())
            for ax in fig.axes for p in ax.patches if p.get_gid() == "impact"]


def with_impact(result, impact):
    """The same run with summary.json's `impact` of every service replaced (None: the field absent)."""
    summary = copy.deepcopy(result.summary)
    for s in summary["services"].values():
        s.pop("impact", None)
        if impact is not None:
            s["impact"] = impact
    return dataclasses.replace(result, summary=summary)


# ---------------------------------------------------------------- panels


def test_panels_with_data_only_and_the_height_follows(result):
    fig = dashboard(result)
    assert panels(fig) == ["events", "load", "latency", "failures", "pool", "waiting callers", "database"]
    assert "recovered" in fig._suptitle.get_text()
    note = fig.subfigs[1]._supxlabel.get_text()
    assert "pods (2 ready throughout, no crash)" in note and "CPU (pods and database under 5 % CPU" in note
    calm = dashboard(build(fake_scenario()))
    assert panels(calm) == ["events", "load", "latency", "failures", "pool", "database"]
    width, height = png_size(fig)
    calm_width, calm_height = png_size(calm)
    assert width == calm_width == 1600 and height > calm_height + 100


def test_no_failures_says_so_in_a_small_panel():
    fig = dashboard(build(fake_scenario()))
    failures = panel(fig, "failures")
    assert [t.get_text() for t in failures.texts] == ["no request failed"]
    assert failures.get_position().height < 0.5 * panel(fig, "load").get_position().height


def test_two_services():
    r = build(fake_scenario(services=("api", "worker"), incidents=[(120, 180)]), spiral(120, 250), EVENTS)
    fig = dashboard(r)
    assert "api open" in legend_labels(panel(fig, "pool")) and "worker in use" in legend_labels(panel(fig, "pool"))


def test_in_hours_with_states_leaks_idle_transactions_and_lock_waits(leaky):
    fig = dashboard(leaky)
    assert panel(fig, panels(fig)[-1]).get_xlabel() == "time (hours)"
    assert panel(fig, "load").get_xlim()[1] == pytest.approx(4.0)
    assert {"active", "idle", "idle in transaction"} <= set(legend_labels(panel(fig, "database")))
    assert {"dead (never given back)", "leaked (cumulative)"} <= set(legend_labels(panel(fig, "pool")))
    assert "writes lost (succeeded)" in legend_labels(panel(fig, "failures"))
    locks = legend_labels(panel(fig, "transactions and locks"))
    assert locks == ["sessions idle in transaction", "statements that waited for a lock (cumulative)",
                     "lock wait, mean of those ended (ms, right)"]
    assert "pods" in panels(fig)  # a crash is worth a panel
    calm = dashboard(build(fake_scenario()))
    assert panel(calm, panels(calm)[-1]).get_xlabel() == "time (minutes)"


def test_waiting_has_its_own_linear_axis(result):
    fig = dashboard(result)
    assert panel(fig, "pool").get_yscale() == panel(fig, "waiting callers").get_yscale() == "linear"
    assert panel(fig, "waiting callers").get_ylim()[1] >= 30 > panel(fig, "pool").get_ylim()[1] - 10


def test_a_quiet_service_latency_is_faint_the_busy_one_bold():
    fig = dashboard(run(SCENARIOS / "push_spike.toml"))
    lines = {line.get_label(): line for line in panel(fig, "latency").get_lines()}
    api = [line for label, line in lines.items() if label.startswith("api p99")]
    assert api and api[0].get_alpha() in (None, 1.0) and api[0].get_linewidth() > 1  # (faint only where it stalls)
    faint = [line for label, line in lines.items() if label.startswith("reports p99 (faint")]
    assert faint and faint[0].get_alpha() < 0.5


# ---------------------------------------------------------------- the key


def test_the_key_names_every_shade_and_every_line_colour():
    sc = fake_scenario(phases=[(300, 360, 300.0)], incidents=[(120, 180)])
    events = EVENTS + (Event(200.0, "api", "pod_crash", "api-0 crashed"), Event(210.0, "api", "scale_up", "1 -> 2"))
    fig = dashboard(build(sc, spiral(120, 250), events))
    key = key_labels(fig)
    assert {"slow queries", "traffic spike", "impact window"} <= set(key)
    assert "crash" in key and "scale up" in key
    assert any("first failure" in k for k in key)
    drawn = {line.get_color() for line in panel(fig, "load").get_lines() if line.get_xdata()[0] == line.get_xdata()[1]}
    named = {EVENT_KINDS[e.kind].colour for e in events if EVENT_KINDS[e.kind].colour}
    assert named <= drawn and len(named) == sum(1 for k in key if k in ("crash", "scale up")) + 1


# ---------------------------------------------------------------- numbered rows


def markers(fig) -> dict[int, object]:
    strip = panel(fig, "events")
    return {int(t.get_gid()[4:]): t for t in strip.texts if (t.get_gid() or "").startswith("row-")}


def check_markers(fig, result) -> None:
    """One marker per row of the report (its number), inside the strip, no two overlapping."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    rows = timeline(RunView(result))
    found = markers(fig)
    assert {r.number for r in rows if r.events} <= set(found)
    assert all(found[r.number].get_text() == str(r.number) for r in rows if r.number in found)
    strip = panel(fig, "events").get_window_extent(renderer)
    boxes = {n: t.get_bbox_patch().get_window_extent(renderer) for n, t in found.items()}
    for n, b in boxes.items():
        assert strip.x0 - 0.5 <= b.x0 and b.x1 <= strip.x1 + 0.5, n
        assert strip.y0 - 0.5 <= b.y0 and b.y1 <= strip.y1 + 0.5, n
    for (n, a), (m, b) in combinations(boxes.items(), 2):
        assert min(a.x1, b.x1) <= max(a.x0, b.x0) or min(a.y1, b.y1) <= max(a.y0, b.y0), (n, m)


@pytest.mark.parametrize("name", ["push_spike", "db_restart", "leak"])
def test_numbered_markers_of_shipped_runs(name):
    r = run(SCENARIOS / f"{name}.toml")
    check_markers(dashboard(r), r)


def test_markers_at_the_edges_and_a_burst_stay_inside_apart():
    burst = tuple(Event(300.0, "api", kind, f"api-{i}") for i in range(8)
                  for kind in ("pool_error", "pod_crash"))
    events = (Event(0.0, "api", "first_pool_waiting", "at once"),) + burst + (
        Event(599.9, "api", "schedule", "replicas set to 3 (from 2)"),)
    r = build(fake_scenario(), spiral(300, 600), events)
    rows = timeline(RunView(r))
    assert len([row for row in rows if row.events]) >= 18  # and the alerts' rows
    check_markers(dashboard(r), r)


# ---------------------------------------------------------------- impact window


def test_the_impact_window_from_the_summary(result):
    fig = dashboard(with_impact(result, {"start_s": 130.0, "end_s": 250.0}))
    spans = impact_spans(fig)
    assert {name for name, _, _ in spans} == set(panels(fig))
    assert all((a, b) == (pytest.approx(130 / 60), pytest.approx(250 / 60)) for _, a, b in spans)
    assert "impact window" in key_labels(fig)


def test_never_degraded_no_impact_window(result):
    fig = dashboard(with_impact(result, {"start_s": None, "end_s": None}))
    assert impact_spans(fig) == []
    assert not any(k.startswith("impact") for k in key_labels(fig))


def test_without_the_field_the_degraded_buckets(result):
    fig = dashboard(with_impact(result, None))
    spans = impact_spans(fig)
    assert spans and all((a, b) == (pytest.approx(120 / 60), pytest.approx(250 / 60)) for _, a, b in spans)
    assert "impact window (degraded buckets)" in key_labels(fig)


def test_markers_stay_apart_when_long_names_narrow_the_plot():
    """Legends wider than planned: the markers are laid out again for the narrower strip."""
    name = "checkout_payments_reconciliation_worker_for_the_eu_west_region_batch"
    burst = tuple(Event(300.0 + i / 2, name, kind, f"p-{i}") for i in range(10) for kind in ("pool_error", "pod_crash"))
    r = build(fake_scenario(services=("api", name), incidents=[(120, 180)]), spiral(120, 600), burst)
    fig = dashboard(r)
    assert fig.axes[0].bbox.width < 1000
    check_markers(fig, r)


def test_matplotlib_is_not_imported_with_the_dashboard():
    import subprocess
    import sys

    code = "import sys, spiralsim.report.dashboard; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_defences_panel_shows_what_each_defence_refused():
    from spiralsim import load_scenario, simulate
    r = simulate(load_scenario(SCENARIOS / "retry_storm.toml", [
        "duration=3m", "services.api.client.circuit_breaker=true", "services.api.pod.adaptive_concurrency=true",
        "services.api.client.retry_budget=0.1"]))
    fig = dashboard(r)
    assert panels(fig)[4] == "defences"
    labels = legend_labels(panel(fig, "defences"))
    for label in ("refused: breaker open", "refused: adaptive limit", "retries denied (budget)", "breaker open",
                  "adaptive limit per pod (right)"):
        assert label in labels
    assert "defences" not in panels(dashboard(simulate(load_scenario(SCENARIOS / "retry_storm.toml",
                                                                     ["duration=3m"]))))


def test_the_event_loop_panel_shows_the_lag_against_the_probes_timeout():
    fig = dashboard(run(Path("scenarios/liveness_spiral.toml")))
    ax = panel(fig, "event loop")
    assert ax.get_yscale() == "log"
    assert legend_labels(ax) == ["event-loop lag, mean", "worst pod", "probe timeout 1 s"]
    lag = next(line for line in ax.get_lines() if line.get_label() == "worst pod")
    assert max(lag.get_ydata()) > 1000  # seconds behind: past the probe's 1 s timeout


def test_the_event_loop_panel_is_left_out_while_every_loop_keeps_up():
    fig = dashboard(run(Path("scenarios/read_replicas.toml")))
    assert "event loop" not in panels(fig)
    assert "event loop (every pod's event loop under 10 ms behind throughout)" in fig.subfigs[1]._supxlabel.get_text()
