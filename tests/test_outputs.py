"""The dashboard, the post-mortem, the run folder and the command line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic_run import build, fake_scenario, leak, spiral

from spiralsim.cli import main
from spiralsim.metrics import Event
from spiralsim.report import render_report, summary_lines
from spiralsim.report.format import mmss
from spiralsim.report.run_folder import FILES, write_run
from spiralsim.scenario import scenario_from_dict

EVENTS = (
    Event(120.0, "", "incident_start", "slow_queries x100"),
    Event(121.5, "api", "first_failure", "acquire_timeout: timeout exceeded when trying to connect"),
    Event(180.0, "", "incident_end", "slow_queries x100"),
)


@pytest.fixture(scope="module")
def result():
    return build(fake_scenario(incidents=[(120, 180)]), spiral(120, 250), EVENTS)


def _real_scenario(**extra):
    data = {"name": "tiny", "duration": 600, "seed": 3,
            "services": {"api": {"traffic": {"rate": 100}, "endpoints": {"get": {}}}},
            "incidents": [{"kind": "slow_queries", "start": 120, "end": 180, "factor": 100}]}
    return scenario_from_dict({**data, **extra})


def test_report_tells_the_trigger_and_the_outcome(result):
    text = render_report(result)
    assert text.startswith("# Post-mortem: synthetic (seed 7)")
    assert "**Outcome: recovered, 1 min 10 s after the last trigger ended.**" in text
    assert "| degraded | 02:00–04:10 (2 min 10 s degraded) |" in text
    assert "| detected | after 11 s (`pool_waiting`) |" in text
    assert "| 02:00 | Incident began: slow_queries x100. |" in text
    assert "| 02:01 | The first failed request on `api`: acquire_timeout" in text
    assert "Alert `pool_waiting` fired on `api`" in text
    assert "Of 60,000 requests, 6,500 failed (10.8 %)" in text
    assert "A synthetic story." in text
    assert mmss(3725) == "1:02:05"


def test_report_metastable():
    text = render_report(build(fake_scenario(incidents=[(120, 180)]), spiral(120, 600)))
    assert "**Outcome: metastable: a backlog of `api` that does not drain, with no fault and within capacity.**" in text


def test_write_run_writes_six_identical_files(tmp_path):
    r = build(_real_scenario(), spiral(120, 250), EVENTS)
    a = write_run(r, tmp_path / "a")
    b = write_run(r, tmp_path / "b")
    assert sorted(p.name for p in a.iterdir()) == sorted(FILES)
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    summary = json.loads((a / "summary.json").read_text())
    assert summary["outcome"] == "recovered"
    header, first = (a / "timeseries.csv").read_text().splitlines()[:2]
    assert header.split(",")[:3] == ["time", "service", "arrivals"]
    assert first.startswith("0,api,100,")
    events = (a / "events.csv").read_text().splitlines()
    assert events[0] == "time,service,kind,detail"
    assert events[1] == "120,,incident_start,slow_queries x100"
    assert "121.5,api,first_failure," in events[2]
    assert str(tmp_path) not in (a / "report.md").read_text()


# ---------------------------------------------------------------- command line


BAD = """
name = "bad"
duration = "10m"
[database]
max_conections = 100
[services.api.traffic]
rate = -5
[services.api.endpoints.get]
"""


def test_cli_bad_scenario_prints_one_line_per_error(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) >= 2
    assert all(line.startswith("spiralsim: error: ") for line in lines)
    assert any("max_conections" in line for line in lines)
    assert any("rate" in line for line in lines)
    assert "Traceback" not in err and out == ""
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [["run", "/nonexistent/x.toml"], ["run", "."],
                                  ["run", "{path}", "--set", "nonsense"]])
def test_cli_unreadable_input_exits_2(tmp_path, capsys, args):
    path = tmp_path / "ok.toml"
    path.write_text('duration = "10s"\n[services.api.traffic]\nrate = 1\n[services.api.endpoints.get]\n')
    assert main([a.format(path=path) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spiralsim: error: ") and "Traceback" not in err


def test_cli_usage_error_exits_2(capsys):
    assert main(["run"]) == 2
    assert main([]) == 2


def test_cli_runs_a_tiny_scenario(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text('duration = "30s"\nseed = 2\n[services.api.traffic]\nrate = 20\n'
                    '[services.api.endpoints.get]\n')
    out_dir = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out_dir), "--set", "services.api.pool.max=5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("outcome: ")
    assert out[-1] == str(out_dir)
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(FILES)
    assert "max = 5" in (out_dir / "scenario.toml").read_text()
    assert main(["run", str(path), "--out", str(out_dir), "--quiet", "--seed", "4"]) == 0
    assert capsys.readouterr().out == f"{out_dir}\n"
    assert json.loads((out_dir / "summary.json").read_text())["seed"] == 4


def test_cli_default_folder_is_name_and_seed(tmp_path, capsys, monkeypatch):
    path = tmp_path / "tiny.toml"
    path.write_text('duration = "5s"\n[services.api.traffic]\nrate = 5\n[services.api.endpoints.get]\n')
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(path), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(Path("runs") / "tiny-0")
    assert (tmp_path / "runs" / "tiny-0" / "report.md").exists()


# ---------------------------------------------------------------- leaks, new events, alerts' lead


NEW_EVENTS = (
    Event(3600.0, "api", "first_leak", "GET /orders: no finally"),
    Event(4000.0, "api", "first_orphan", "POST /pay"),
    Event(5000.0, "api", "pod_crash", "api-0 crashed: unhandled 'error' event; restart in 10 s"),
    Event(5001.0, "api", "pod_crash", "api-1 crashed: unhandled 'error' event; restart in 10 s"),
    Event(5002.0, "api", "pod_crash", "api-2 crashed: unhandled 'error' event; restart in 10 s"),
    Event(6000.0, "", "incident_start", "db_restart"),
    Event(6001.0, "api", "pool_error", "Connection terminated unexpectedly"),
    Event(6002.0, "api", "client_error", "Connection terminated"),
    Event(6003.0, "api", "client_error", "Connection terminated"),
    Event(6030.0, "", "incident_end", "db_restart"),
)


@pytest.fixture(scope="module")
def leaky():
    return build(fake_scenario(duration=14400.0), leak(10800.0), NEW_EVENTS)


def test_report_of_a_long_leak(leaky):
    text = render_report(leaky)
    assert "| 1:00:00 | The first leaked connection on `api`, checked out and never released" in text
    assert "| 1:06:40 | The first orphaned transaction on `api`" in text
    assert "| 1:23:20–1:23:22 | 3 pods of `api` crashed; first: api-0 crashed: unhandled 'error' event" in text
    assert "| 1:40:00 | Incident began: db_restart. |" in text
    assert "| 1:40:30 | Incident ended: db_restart. |" in text
    assert "`api`'s pool emitted 'error': Connection terminated unexpectedly." in text
    assert "An error event on a checked-out client of `api` (2 times)" in text
    assert "## Alerts" in text
    assert ("- `pool_collapse` on `api` fired at 1:11:00" in text
            and "fired 1 h 49 min before `api`'s impact began." in text)
    assert "fired 11 s after `api`'s impact began." in text
    assert "| leaked connections | 72 |" in text
    assert "| successes whose writes were rolled back | 14 |" in text
    assert "| statements that waited for an orphan's locks | 14 (mean 250 ms) |" in text
    assert "sessions killed" not in text  # zero rows are left out
    assert "14 requests succeeded but had their writes rolled back" in text
    assert "**Outcome: stuck: `api`'s pools still hold 10 leaked connections, 10 of them dead.**" in text


def test_report_of_a_short_run_keeps_mm_ss_and_no_trouble_rows(result):
    text = render_report(result)
    assert "| 02:00 |" in text and "leaked connections" not in text
    assert "- `pool_waiting` on `api` fired at 02:11" in text and "fired 11 s after `api`'s impact began." in text
    assert result.summary["alerts"][0]["lead_s"] is None


def test_cli_summary_has_one_leak_line_per_service(leaky):
    lines = summary_lines(leaky.summary)
    assert ("  leaks: 72 leaked connections, 7 orphaned transactions, 14 requests' writes lost, "
            "14 lock waits (mean 250 ms), up to 10 dead clients in the pool") in lines
    assert lines[-1] == ("alerts: idle_in_transaction 1 h 59 min before the impact, "
                         "pool_collapse (api) 1 h 49 min before the impact, pool_waiting (api), error_rate (api)")
    assert not any(line.startswith("  leaks:") for line in summary_lines(build(fake_scenario()).summary))
