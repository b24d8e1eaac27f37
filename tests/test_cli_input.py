"""The command line refuses bad input with one line per problem and exit status 2, never a
traceback: every scenario error at once, a name that would leave runs/, a run too big to
simulate (`--max-requests`)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from spiralsim.cli import EXIT_BAD_INPUT, EXIT_OK, _default_folder, main
from spiralsim.scenario import Scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

SMALL = """
duration = "{duration}"
[services.api.traffic]
rate = {rate}
arrivals = "deterministic"
[services.api.endpoints.e]
"""


def write(tmp_path: Path, text: str, name: str = "small.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def run(capsys, *argv: str) -> tuple[int, list[str], list[str]]:
    """main(argv): its exit status, stdout lines and stderr lines."""
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out.splitlines(), captured.err.splitlines()


def test_shared_database_readme_fix_lists_every_error_at_once(capsys):
    status, out, err = run(capsys, "run", str(SCENARIOS / "shared_database.toml"),
                           "--set", "services.orders.pool.max=5")
    assert status == EXIT_BAD_INPUT and out == []
    assert err == [
        "spiralsim: error: services.orders.pod.warm_connections: contradictory settings: must be <= pool.max (5),"
        " got 10; set services.orders.pod.warm_connections to at most 5 or raise services.orders.pool.max",
        "spiralsim: error: services.orders.pool.min: contradictory settings: must be <= max (5), got 10;"
        " set services.orders.pool.min to at most 5 or raise max",
    ]


# ---------------------------------------------------------------- the name


@pytest.mark.parametrize("name", ["../escaped-run", "a/b", "..", ".hidden", "a\\\\b", " ", "", "bell\\u0007"])
def test_a_name_that_is_no_file_name_is_refused_and_nothing_is_written(tmp_path, monkeypatch, capsys, name):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    path = write(tmp_path, f'name = "{name}"\n' + SMALL.format(duration="1s", rate=10))
    status, out, err = run(capsys, "run", path, "--quiet")
    assert status == EXIT_BAD_INPUT and out == []
    assert len(err) == 1 and err[0].startswith("spiralsim: error: name: must be a plain file name"), err
    assert list(work.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["small.toml", "work"]


def test_a_plain_name_writes_inside_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, 'name = "escaped-run"\n' + SMALL.format(duration="1s", rate=10))
    status, out, _ = run(capsys, "run", path, "--quiet")
    assert status == EXIT_OK and out == [str(Path("runs") / "escaped-run-0")]
    assert (tmp_path / "runs" / "escaped-run-0" / "summary.json").is_file()


def test_the_default_folder_never_leaves_runs():
    # Defence in depth: a Scenario built without validation, with a name the scenario layer refuses.
    for name in ["../escaped-run", "a/b", "x/../..", "/abs"]:
        assert _default_folder(Scenario.model_construct(name=name, seed=0)) is None
    assert _default_folder(Scenario.model_construct(name="ok", seed=3)) == Path("runs") / "ok-3"


def test_out_is_the_users_choice(tmp_path, capsys):
    path = write(tmp_path, 'name = "x"\n' + SMALL.format(duration="1s", rate=10))
    out_dir = tmp_path / "elsewhere" / ".." / "chosen"
    status, _, _ = run(capsys, "run", path, "--out", str(out_dir), "--quiet")
    assert status == EXIT_OK and (tmp_path / "chosen" / "summary.json").is_file()


# ---------------------------------------------------------------- the work


@pytest.mark.parametrize(("rate", "line"), [
    ("1e308", "services.api.traffic: more than 1.8e+308 requests to simulate (limit 5e+07)"),
    ("1000000000000000000", "services.api.traffic: about 6e+20 requests to simulate (limit 5e+07)"),
    ("100000", "services.api.traffic: about 6e+07 requests to simulate (limit 5e+07)"),
])
def test_an_absurd_rate_is_refused_before_simulating(tmp_path, capsys, rate, line):
    path = write(tmp_path, SMALL.format(duration="10m", rate=rate))
    status, out, err = run(capsys, "run", path, "--out", str(tmp_path / "run"))
    assert status == EXIT_BAD_INPUT and out == []
    assert err == [f"spiralsim: error: {line}; raise it with --max-requests N"]
    assert not (tmp_path / "run").exists()


def test_max_requests_sets_the_limit(tmp_path, capsys):
    # 1e6 req/s for 2 ms: 2000 requests, a big rate but a quick run.
    path = write(tmp_path, SMALL.format(duration="2ms", rate="1e6"))
    status, _, err = run(capsys, "run", path, "--out", str(tmp_path / "run"), "--max-requests", "1000")
    assert status == EXIT_BAD_INPUT
    assert err == ["spiralsim: error: services.api.traffic: about 2e+03 requests to simulate (limit 1000);"
                   " raise it with --max-requests N"]
    status, out, _ = run(capsys, "run", path, "--out", str(tmp_path / "run"), "--max-requests", "1e4", "--quiet")
    assert status == EXIT_OK and out == [str(tmp_path / "run")]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["services"]["api"]["requests"] == 2000


def test_the_limit_counts_overrides(tmp_path, capsys):
    path = write(tmp_path, SMALL.format(duration="10m", rate=10))
    status, _, err = run(capsys, "run", path, "--set", "services.api.traffic.rate=1e9")
    assert status == EXIT_BAD_INPUT and err == [
        "spiralsim: error: services.api.traffic: about 6e+11 requests to simulate (limit 5e+07);"
        " raise it with --max-requests N"]


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "nan"])
def test_max_requests_must_be_a_positive_number(tmp_path, capsys, bad):
    path = write(tmp_path, SMALL.format(duration="1s", rate=10))
    status, out, err = run(capsys, "run", path, "--max-requests", bad)
    assert status == EXIT_BAD_INPUT and out == []
    assert err[-1].startswith("spiralsim run: error: argument --max-requests: ")


def test_errors_and_refusals_are_never_a_traceback(tmp_path, capsys):
    path = write(tmp_path, 'name = "../x"\n' + SMALL.format(duration="10m", rate="1e308"))
    status, _, err = run(capsys, "run", path)
    assert status == EXIT_BAD_INPUT and len(err) == 1 and "Traceback" not in "\n".join(err)


def test_a_duration_past_31_years_is_refused_in_one_line(tmp_path, capsys):
    path = tmp_path / "long.toml"
    path.write_text('duration = 1e308\n[services.api.traffic]\nrate = 0\n[services.api.endpoints.e]\n')
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "spiralsim: error: duration: must be at most 1e+09 s (about 31 years), got 1e+308"]


def test_a_run_of_too_many_buckets_is_refused_before_it_starts(tmp_path, capsys):
    """duration / bucket sets the recording's memory: 1e8 s (or 1 us buckets) is refused in one line."""
    path = tmp_path / "long.toml"
    path.write_text('duration = 1e8\n[services.api.traffic]\nrate = 0\n[services.api.endpoints.e]\n')
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["spiralsim: error: bucket: about 1e+08 buckets to record (duration / bucket, limit 1e+06);"
                   " set a longer bucket or a shorter duration"]
    assert not (tmp_path / "out").exists()
