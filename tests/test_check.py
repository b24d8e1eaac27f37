"""`spiralsim check`: the article's rules on a scenario's settings, before any run.

What each shipped scenario fails (and what the fixes its description suggests clear),
each rule failing and passing on a hand-made scenario, the connection numbers agreeing
with the report's arithmetic, the command line (exit 0, 1 and 2, `--json`) and the
failed rules `spiralsim run` prints before it runs.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from builders import scenario

from spiralsim.analysis import arithmetic
from spiralsim.analysis.check import BUFFER_S, RULES, check
from spiralsim.cli import main
from spiralsim.report.check import check_lines, summary_line
from spiralsim.report.console import arithmetic_line
from spiralsim.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
RULE_IDS = [r.name for r in RULES]

#: What each shipped scenario fails, and why the article says so:
#: - push_spike: 12 x 10 + 5 x 10 = 170 against 80 and 97; `reports` keeps node-postgres's acquire timeout 0;
#:   open_notification is pool.connect() without try/finally.
#: - shared_database: 9 x 10 + 4 x 10 = 130 against 80 and 97.
#: - slow_query: acquire 5 s against clients that give up at 3 s and retry three times.
#: - retry_storm: acquire timeout 0 (forever) with clients that give up at 2 s and retry three times.
#: - leak: pool.connect() without try/finally.
#: - idle_in_transaction: the job orphans its transaction with no idle_in_transaction_session_timeout;
#:   its pool keeps node-postgres's acquire timeout 0.
#: - db_restart: nothing of the arithmetic (its trouble, the missing pool.on('error'), is no rule here).
#: - pgbouncer: the connections fit (PgBouncer's 30 server connections + 50 = 80), but an attempt can wait
#:   15 s for the pool and PgBouncer's default 120 s for a server, past the 30 s its caller waits before it
#:   retries; `reports` keeps node-postgres's acquire timeout 0, as in push_spike.
EXPECTED_FAILS: dict[str, set[str]] = {
    "db_restart": set(),
    "idle_in_transaction": {"timeouts_in_order", "acquire_timeout", "idle_in_transaction_timeout"},
    "leak": {"leak_prone_endpoint"},
    "pgbouncer": {"timeouts_in_order", "acquire_timeout", "retries_hold_slots"},
    "push_spike": {"connections_share", "connections_usable", "timeouts_in_order", "acquire_timeout",
                   "leak_prone_endpoint"},
    "retry_storm": {"timeouts_in_order", "acquire_timeout", "retries_hold_slots"},
    "shared_database": {"connections_share", "connections_usable"},
    "slow_query": {"timeouts_in_order", "retries_hold_slots"},
    "slow_query_creep": {"timeouts_in_order", "retries_hold_slots"},  # slow_query's timeouts, its plan creeping
    # 100 backends grown to 50 MB on a 2 GB server, and api never rotates its connections
    "backend_bloat": {"memory"},
    # a stuck job is not a setting: check has nothing to say of the shared pool
    "background_jobs": set(),
    # the article's settings on push_spike's pods: the arithmetic still fails, reports' callers give up
    # at 10 s, before 3 s + 20 s + a buffer, and api's two-statement transaction can take 3 s + 2 x 20 s
    "sane_defaults": {"connections_share", "connections_usable", "timeouts_in_order", "retries_hold_slots"},
    # 12 pods x 10 on each replica too, above its 97 usable slots
    "read_replicas": {"connections_share", "connections_usable", "replica_connections"},
    # 350 req/s x 12.2 ms of event-loop CPU: more than its 4 pods' loops can run
    "liveness_spiral": {"event_loop"},
    # 1000 instances x 10: the fan-out the article warns of
    "serverless": {"connections_share", "connections_usable", "timeouts_in_order", "acquire_timeout"},
}

SHIPPED = sorted(SCENARIOS.glob("*.toml"))


def failed(sc) -> set[str]:
    return {f.rule for f in check(sc) if f.status == "fail"}


def status(sc, rule: str, service: str | None = None) -> str:
    """The worst status of `rule` (on `service`, if given); "n/a" when it found nothing."""
    order = ["fail", "warn", "ok"]
    found = [f.status for f in check(sc) if f.rule == rule and (service is None or f.service == service)]
    return min(found, key=order.index) if found else "n/a"


def finding(sc, rule: str, service: str):
    (only,) = [f for f in check(sc) if f.rule == rule and f.service == service]
    return only


# ---------------------------------------------------------------- the shipped scenarios


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_each_shipped_scenario_fails_what_the_article_says(path):
    assert path.stem in EXPECTED_FAILS, f"a new shipped scenario: say in EXPECTED_FAILS what check fails on {path}"
    assert failed(load_scenario(path)) == EXPECTED_FAILS[path.stem]


@pytest.mark.parametrize("name, fix, fails", [
    ("push_spike", ["services.api.autoscaler.max_replicas=4"],  # tight: 90, within 97, above 80
     {"connections_share", "timeouts_in_order", "acquire_timeout", "leak_prone_endpoint"}),
    ("shared_database", ["services.orders.pool.max=5", "services.orders.pool.min=5",
                         "services.orders.pod.warm_connections=5"], {"connections_share"}),
    ("retry_storm", ["services.api.pool.acquire_timeout=1s"], set()),
    ("retry_storm", ["services.api.client.max_attempts=1"], {"timeouts_in_order", "acquire_timeout"}),
    ("leak", ["services.api.endpoints.transfer.leak_on_error=false"], set()),
    ("idle_in_transaction", ["database.idle_in_transaction_session_timeout=60s"],
     {"timeouts_in_order", "acquire_timeout"}),
])
def test_a_fix_the_description_suggests_clears_its_rule(name, fix, fails):
    assert failed(load_scenario(SCENARIOS / f"{name}.toml", fix)) == fails


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_finding_is_one_line_of_a_known_rule_with_json_figures(path):
    for f in check(load_scenario(path)):
        assert f.rule in RULE_IDS and f.status in ("fail", "warn", "ok")
        assert "\n" not in f.line and f.line
        json.dumps(f.figures, allow_nan=False)


def test_the_rules_have_distinct_snake_case_ids():
    assert len(set(RULE_IDS)) == len(RULE_IDS)
    assert all(re.fullmatch(r"[a-z][a-z_]*", r) for r in RULE_IDS)


def test_check_agrees_with_the_reports_arithmetic_on_push_spike():
    sc = load_scenario(SCENARIOS / "push_spike.toml")
    a = arithmetic(sc)
    total = finding(sc, "connections_share", "")
    assert total.line.startswith(a.sentence().split(": ", 1)[1].split(" connections at most")[0].replace("`", ""))
    assert total.line.startswith("api 12 pods x 10 + reports 5 pods x 10 = 170 connections at most, above 0.8 x"
                                 " max_connections = 80")
    assert "above the 97 usable slots" in finding(sc, "connections_usable", "").line
    # summary.json's arithmetic, which the console and the report print (the golden run's)
    golden = json.loads((ROOT / "tests" / "golden" / "push_spike.json").read_text())["summary"]["arithmetic"]
    usable = finding(sc, "connections_usable", "").figures["usable"]
    assert golden == {"verdict": total.figures["verdict"], "connections": total.figures["total"],
                      "alert_limit": total.figures["limit"], "usable": usable}
    assert arithmetic_line(golden) == ("arithmetic: fails: the pools can ask for 170 connections,"
                                       " above the 97 usable slots")
    api = finding(sc, "connections_share", "api")
    assert api.line == ("api: 12 pods x 10 = 120, plus 50 for the others = 170, above 0.8 x max_connections = 80;"
                        " room for 30: pool.max 2 at 12 pods, or 3 pods of 10")  # the article's "plug in your numbers"


# ---------------------------------------------------------------- each rule, failing and passing

#: The article's sane defaults: two pods of max 10 at 100 req/s of 5 ms statements, acquire 3 s,
#: statement_timeout 20 s and idle_in_transaction_session_timeout 60 s on the database, a 30 s
#: load balancer and a client that waits a little longer. Every rule passes.
SANE: dict = {
    "duration": "1m",
    "database": {"statement_timeout": "20s", "idle_in_transaction_session_timeout": "60s"},
    "services": {"api": {
        "traffic": {"rate": 100},
        "endpoints": {"get": {"statement_cpu": "1ms", "statement_wait": "4ms"}},
        "client": {"timeout": "31s"},
        "balancer": {"upstream_timeout": "30s"},
        "pod": {"replicas": 2},
        "pool": {"max": 10, "acquire_timeout": "3s"},
    }},
}


def test_the_sane_defaults_pass_every_rule():
    found = check(scenario(SANE))
    assert {f.status for f in found} == {"ok"}, [f.line for f in found if f.status != "ok"]
    assert {f.rule for f in found} == set(RULE_IDS) - {"pgbouncer_session_mode", "pgbouncer_max_client_conn",
                                                       "replica_connections", "memory",  # (no memory_mb)
                                                       "pod_memory"}  # (no memory_limit_mb)
    assert summary_line(found) == "0 of 10 rules fail"


@pytest.mark.parametrize("sets, share, usable", [
    (["services.api.pod.replicas=8"], "ok", "ok"),             # 80: the limit itself holds
    (["services.api.pod.replicas=9"], "fail", "ok"),           # 90: tight
    (["services.api.pod.replicas=10"], "fail", "fail"),        # 100 > 97
    (["database.other_connections=61"], "fail", "ok"),         # 20 + 61 = 81
    (["services.api.autoscaler.target=0.7", "services.api.autoscaler.max_replicas=10"], "fail", "fail"),
])
def test_connections_against_the_share_and_the_usable_slots(sets, share, usable):
    sc = scenario(SANE, *sets)
    assert (status(sc, "connections_share"), status(sc, "connections_usable")) == (share, usable)
    assert status(sc, "connections_share", "api") == share == status(sc, "connections_share", "")
    verdict = {("ok", "ok"): "holds", ("fail", "ok"): "tight", ("fail", "fail"): "fails"}[(share, usable)]
    assert arithmetic(sc).verdict == verdict


def test_pgbouncer_asks_the_database_for_its_server_pool():
    sets = ["services.api.autoscaler.target=0.7", "services.api.autoscaler.max_replicas=10",
            'services.api.pgbouncer.pool_mode="transaction"', "services.api.pgbouncer.max_client_conn=200"]
    sc = scenario(SANE, *sets)
    assert arithmetic(sc).total == 20  # default_pool_size, not 10 x 10
    assert status(sc, "connections_share") == status(sc, "connections_usable") == "ok"
    assert status(sc, "pgbouncer_session_mode") == status(sc, "pgbouncer_max_client_conn") == "ok"
    assert "20 server connections through PgBouncer (for 10 pods x 10)" in arithmetic(sc).sentence()


@pytest.mark.parametrize("mode, replicas, verdict", [("session", 3, "fail"), ("session", 2, "ok"),
                                                     ("transaction", 3, "ok")])
def test_pgbouncer_in_session_mode_brings_the_multiplication_back(mode, replicas, verdict):
    sc = scenario(SANE, f'services.api.pgbouncer.pool_mode="{mode}"', f"services.api.pod.replicas={replicas}",
                  "services.api.pgbouncer.query_wait_timeout=1s")
    assert status(sc, "pgbouncer_session_mode") == verdict
    if verdict == "fail":
        assert "30 client connections for 20 server connections in session mode" in \
            finding(sc, "pgbouncer_session_mode", "api").line


def test_pgbouncer_refuses_clients_past_max_client_conn():
    sc = scenario(SANE, 'services.api.pgbouncer.pool_mode="transaction"', "services.api.pgbouncer.max_client_conn=15",
                  "services.api.pgbouncer.query_wait_timeout=1s")
    assert status(sc, "pgbouncer_max_client_conn") == "fail"
    assert status(scenario(SANE, "services.api.pgbouncer.max_client_conn=20",
                           "services.api.pgbouncer.query_wait_timeout=1s"), "pgbouncer_max_client_conn") == "ok"


@pytest.mark.parametrize("sets, verdict", [
    ([], "ok"),                                                  # 3 + 20 + 0.5 = 23.5 < 30 and < 31
    (["services.api.client.timeout=10s"], "fail"),               # the caller gives up first
    (["services.api.balancer.upstream_timeout=20s"], "fail"),    # the load balancer's 504 first
    (["services.api.pool.acquire_timeout=9.5s"], "fail"),        # 9.5 + 20 + 0.5 = 30, not less than 30
    (["services.api.pool.acquire_timeout=0"], "fail"),           # forever
    (["services.api.client.timeout=0", "services.api.balancer.upstream_timeout=0"], "ok"),  # nobody gives up
    (["services.api.pgbouncer.query_wait_timeout=120s"], "fail"),  # PgBouncer's queue counts too
    (["database.statement_timeout=0", "services.api.client.timeout=4s"], "ok"),  # 3 + 5 ms + 0.5 (expected)
])
def test_timeouts_in_order(sets, verdict):
    assert status(scenario(SANE, *sets), "timeouts_in_order") == verdict


def test_the_timeouts_line_says_the_sum():
    line = finding(scenario(SANE, "services.api.client.timeout=10s"), "timeouts_in_order", "api").line
    assert line.startswith(f"api: acquire timeout 3 s + statement_timeout 20 s + {BUFFER_S * 1000:g} ms buffer"
                           f" = 23.5 s, less than the upstream_timeout 30 s; not less than the client timeout 10 s")


@pytest.mark.parametrize("sets, verdict", [
    ([], "ok"),                                          # 100 x 5 ms = 0.5 of 20
    (["services.api.traffic.rate=3500"], "warn"),        # 17.5 > 0.8 x 20: pool_saturation
    (["services.api.traffic.rate=5000"], "fail"),        # 25 > 20, and no autoscaler
    # a phase past the running pods, within what the autoscaler can add: it warns
    (["services.api.traffic.phases=[{start=\"10s\", end=\"20s\", rate=5000}]",
      "services.api.autoscaler.target=0.7", "services.api.autoscaler.max_replicas=4"], "warn"),
    (["services.api.traffic.phases=[{start=\"10s\", end=\"20s\", rate=5000}]",
      "services.api.autoscaler.target=0.7", "services.api.autoscaler.max_replicas=2"], "fail"),
    # a slow_queries incident past the pools only warns: the pool queues while it lasts
    (["incidents=[{kind=\"slow_queries\", start=\"10s\", end=\"20s\", factor=100}]"], "warn"),
    # ... unless statement_timeout caps the statements: 100 x 100 ms = 10 of 20
    (["incidents=[{kind=\"slow_queries\", start=\"10s\", end=\"20s\", factor=100}]",
      "database.statement_timeout=100ms"], "ok"),
])
def test_little_law(sets, verdict):
    assert status(scenario(SANE, *sets), "little_law") == verdict


@pytest.mark.parametrize("sets, verdict", [
    ([], "ok"),                                            # 100 x 1.1 ms = 0.11 of 2 loops
    (["services.api.pod.cpu_per_request=17ms"], "warn"),   # 100 x 17.1 ms = 1.71 > 0.8 x 2
    (["services.api.pod.cpu_per_request=25ms"], "fail"),   # 2.51 cores > 2 pods, no autoscaler
    (["services.api.pod.cpu_per_request=25ms", "services.api.pod.query_result_cpu=0"], "fail"),
    (["services.api.pod.cpu_per_request=19ms", "services.api.endpoints.get.statements=11"], "fail"),  # 1.9 + 0.11 x 11
    # a phase past the running pods' loops, within what the autoscaler's could run: it warns
    (["services.api.traffic.phases=[{start=\"10s\", end=\"20s\", rate=300}]", "services.api.pod.cpu_per_request=9ms",
      "services.api.autoscaler.target=0.7", "services.api.autoscaler.max_replicas=4"], "warn"),
    (["services.api.traffic.phases=[{start=\"10s\", end=\"20s\", rate=300}]", "services.api.pod.cpu_per_request=9ms",
      "services.api.autoscaler.target=0.7", "services.api.autoscaler.max_replicas=2"], "fail"),
])
def test_event_loop(sets, verdict):
    assert status(scenario(SANE, *sets), "event_loop") == verdict


def test_event_loop_says_the_cores_the_requests_need():
    f = finding(scenario(SANE, "services.api.pod.cpu_per_request=25ms"), "event_loop", "api")
    assert f.line == ("api at the base rate: 100 req/s x 25.1 ms of event-loop CPU = 2.51 cores, more than the event"
                      " loops of 2 pods can run (one core each): the loops fall behind, and every result, release,"
                      " timer and probe with them")


def test_little_law_reads_the_replicas_the_schedule_sets():
    sc = scenario(SANE, "services.api.traffic.phases=[{start=\"10s\", end=\"20s\", rate=3000}]",
                  "services.api.pod.schedule=[{at=\"5s\", replicas=4}]")  # 15 of 40 at 0:10
    phase = [f for f in check(sc) if f.rule == "little_law" and "phase" in f.line]
    assert [f.status for f in phase] == ["ok"] and phase[0].figures["pods"] == 4


@pytest.mark.parametrize("value, verdict", [("0", "fail"), ("15s", "warn"), ("5s", "ok"), ("1s", "ok")])
def test_acquire_timeout(value, verdict):
    assert status(scenario(SANE, f"services.api.pool.acquire_timeout={value}"), "acquire_timeout") == verdict


@pytest.mark.parametrize("value, verdict", [("0", "warn"), ("20s", "ok")])
def test_statement_timeout(value, verdict):
    assert status(scenario(SANE, f"database.statement_timeout={value}"), "statement_timeout") == verdict


ORPHANING = ['services.api.endpoints.pay={kind="transaction", statements=2, orphan_rate=0.01}']


@pytest.mark.parametrize("sets, verdict", [
    (["database.idle_in_transaction_session_timeout=0"], "warn"),
    (["database.idle_in_transaction_session_timeout=0"] + ORPHANING, "fail"),
    (ORPHANING, "ok"),
])
def test_idle_in_transaction_timeout(sets, verdict):
    assert status(scenario(SANE, *sets), "idle_in_transaction_timeout") == verdict


@pytest.mark.parametrize("endpoint, verdict", [
    ('{kind="transaction", statements=2, leak_on_error=true}', "fail"),
    ('{kind="transaction", statements=2, leak_on_error=true, weight=0}', "ok"),  # never called
    ('{kind="transaction", statements=2}', "ok"),
])
def test_leak_prone_endpoint(endpoint, verdict):
    sc = scenario(SANE, f"services.api.endpoints.transfer={endpoint}")
    assert status(sc, "leak_prone_endpoint") == verdict
    if verdict == "fail":
        assert "transfer calls pool.connect() without try/finally" in finding(sc, "leak_prone_endpoint", "api").line


@pytest.mark.parametrize("sets, verdict, slots", [
    ([], "ok", 1),                                                                   # one attempt
    (["services.api.client.max_attempts=3"], "ok", 1),                               # 23 s < 31 s
    (["services.api.client.max_attempts=3", "services.api.client.timeout=2s"], "fail", 3),  # the article's case
    (["services.api.client.max_attempts=3", "services.api.pool.acquire_timeout=0"], "fail", 3),  # forever
    (["services.api.client.max_attempts=3", "database.statement_timeout=0"], "warn", 1),  # only a hang
    (["services.api.client.max_attempts=3", "services.api.client.timeout=2s",
      "services.api.client.retry_budget=0.1"], "warn", 3),                          # the budget caps them
    (["services.api.client.max_attempts=3", "services.api.client.timeout=2s",
      "services.api.balancer.upstream_timeout=0", 'services.api.client.retry_on=["acquire_timeout"]'], "ok", 1),
])
def test_retries_hold_slots(sets, verdict, slots):
    f = finding(scenario(SANE, *sets), "retries_hold_slots", "api")
    assert (f.status, f.figures["slots_per_user"]) == (verdict, slots)
    if verdict == "fail":
        assert "with 3 attempts one user holds up to 3 pool slots" in f.line


# ---------------------------------------------------------------- the lines


def test_little_law_counts_the_leaked_clients_out():
    """A pod running at time 0 with leaked clients serves through the rest of its pool."""
    law = {f.figures["when"]: f for f in check(load_scenario(SCENARIOS / "push_spike.toml")) if f.rule == "little_law"
           and f.service == "api"}
    assert law["the base rate"].figures["connections"] == 4  # 10 - 6 leaked
    assert "(6 more leaked before the run)" in law["the base rate"].line
    clean = {f.figures["when"]: f for f in check(load_scenario(SCENARIOS / "push_spike.toml", [
        "services.api.pod.leaked_at_start=0"])) if f.rule == "little_law" and f.service == "api"}
    assert clean["the base rate"].figures["connections"] == 10


def test_lines_put_the_fails_first_and_sum_up():
    lines = check_lines(check(load_scenario(SCENARIOS / "push_spike.toml")))
    statuses = [line.split()[0] for line in lines[:-1]]
    assert statuses == sorted(statuses, key=["fail", "warn", "ok"].index)
    assert lines[-1] == "5 of 10 rules fail, 5 more warn"
    assert lines[0].startswith("fail  connections_share: api: 12 pods x 10 = 120")


# ---------------------------------------------------------------- the command line


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    status_ = main(list(argv))
    captured = capsys.readouterr()
    return status_, captured.out, captured.err


def test_check_exits_1_when_a_rule_fails_and_0_when_none_does(capsys):
    code, out, err = cli(capsys, "check", str(SCENARIOS / "push_spike.toml"))
    assert code == 1 and err == ""
    assert out.splitlines()[-1] == "5 of 10 rules fail, 5 more warn"
    code, out, _ = cli(capsys, "check", str(SCENARIOS / "db_restart.toml"))
    assert code == 0 and out.splitlines()[-1] == "0 of 10 rules fail, 3 warn"
    code, _, _ = cli(capsys, "check", str(SCENARIOS / "push_spike.toml"), "--set",
                     "services.api.autoscaler.max_replicas=2", "--set", "services.reports.pool.acquire_timeout=2s",
                     "--set", "services.reports.pool.max=2", "--set", "services.reports.pool.min=2",
                     "--set", "services.reports.pod.warm_connections=2",  # 2 x 10 + 5 x 2 = 30
                     "--set", "services.api.endpoints.open_notification.leak_on_error=false",
                     "--set", "services.api.pod.leaked_at_start=0")  # the withTransaction helper
    assert code == 0


@pytest.mark.parametrize("argv, says", [
    (["check", "/nonexistent/x.toml"], "spiralsim: error: /nonexistent/x.toml: "),
    (["check", str(SCENARIOS / "push_spike.toml"), "--set", "services.api.pool.max=x"],
     "spiralsim: error: services.api.pool.max: expected an integer, got 'x'"),
    (["check", str(SCENARIOS / "push_spike.toml"), "--set", "nonsense"], "spiralsim: error: "),
])
def test_check_refuses_bad_input_with_exit_2(capsys, argv, says):
    code, out, err = cli(capsys, *argv)
    assert code == 2 and out == "" and err.startswith(says) and "Traceback" not in err


def test_check_json_is_for_scripts(capsys):
    code, out, _ = cli(capsys, "check", str(SCENARIOS / "retry_storm.toml"), "--json")
    doc = json.loads(out)
    assert code == 1 and doc["failed"] is True and doc["scenario"] == "retry_storm"
    assert {r for r, s in doc["rules"].items() if s == "fail"} == EXPECTED_FAILS["retry_storm"]
    forever = next(f for f in doc["findings"] if f["rule"] == "retries_hold_slots")
    assert forever["figures"]["server_side_s"] is None and forever["figures"]["slots_per_user"] == 3
    code, out, _ = cli(capsys, "check", str(SCENARIOS / "db_restart.toml"), "--json")
    assert code == 0 and json.loads(out)["failed"] is False


TINY = 'duration = "2s"\n[services.api.traffic]\nrate = 5\n[services.api.endpoints.get]\n'


def test_run_prints_the_failed_rules_before_it_runs(tmp_path, capsys, monkeypatch):
    import spiralsim.cli as cli_module

    path = tmp_path / "tiny.toml"
    path.write_text(TINY)  # node-postgres's acquire timeout 0
    seen = []
    real = cli_module.simulate
    monkeypatch.setattr(cli_module, "simulate", lambda sc, progress=None: seen.append(capsys.readouterr().err)
                        or real(sc, progress))
    code = main(["run", str(path), "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and out[0].startswith("outcome: ") and out[-1] == str(tmp_path / "run")
    printed = seen[0].splitlines()
    assert [line.split(":")[2].split()[-1] for line in printed] == ["timeouts_in_order", "acquire_timeout"]
    assert all(line.startswith("spiralsim: check: fail ") for line in printed)
    assert printed[1] == ("spiralsim: check: fail acquire_timeout: api: pool.acquire_timeout 0 waits forever"
                          " (node-postgres's default): a caller that gave up stays queued and the queue can outlive"
                          " its trigger (the article: almost never what you want; 1 to 5 s)")


def test_run_quiet_prints_only_the_folder(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    code, out, err = cli(capsys, "run", str(path), "--out", str(tmp_path / "run"), "--quiet")
    assert code == 0 and out == f"{tmp_path / 'run'}\n" and "check" not in err


# ---------------------------------------------------------------- the reference


def test_the_reference_lists_every_rule():
    text = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    section = text[text.index("## 8 spiralsim check"):]
    rows = re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE)
    assert rows == RULE_IDS


def test_the_readme_shows_what_check_prints_for_the_main_job():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```text\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    shown = [b for b in blocks if b.startswith("fail  ")]
    assert len(shown) == 1, "README.md: expected one ```text block of spiralsim check's output"
    assert shown[0].splitlines() == check_lines(check(load_scenario(SCENARIOS / "push_spike.toml")))


def test_timeouts_in_order_counts_nodes_query_timeout_but_retries_still_hold_the_slot():
    """query_timeout answers the caller; the server's statement (and the pool slot) goes on."""
    sets = ("services.api.pool.query_timeout=2s", "services.api.client.timeout=30s",
            "services.api.client.max_attempts=2")
    found = {f.rule: f for f in check(load_scenario(SCENARIOS / "slow_query.toml", sets)) if f.service == "api"}
    assert "query_timeout 2 s" in found["timeouts_in_order"].line and found["timeouts_in_order"].status == "ok"
    assert found["retries_hold_slots"].status != "ok"  # no statement_timeout: a hung statement keeps its slot


@pytest.mark.parametrize("sets, verdict", [
    ([], "n/a"),                                                           # no memory limit: nothing to check
    (["services.api.pod.memory_limit_mb=512"], "ok"),                     # 50/s x 3 s x 16 KB + 64 MB = 66 MB
    (["services.api.pod.memory_limit_mb=70"], "warn"),                    # 66 MB > 0.8 x 70
    (["services.api.pod.memory_limit_mb=65"], "fail"),
    (["services.api.pod.memory_limit_mb=512", "services.api.pool.acquire_timeout=0"], "fail"),  # waiters forever
    (["services.api.pod.memory_limit_mb=100", "services.api.client.max_attempts=3",
      "services.api.pool.acquire_timeout=15s", "services.api.traffic.rate=200"], "fail"),  # 100/s x 3 x 15 s = 70 MB
])
def test_pod_memory(sets, verdict):
    assert status(scenario(SANE, *sets), "pod_memory") == verdict


def test_pod_memory_says_the_requests_a_pod_holds():
    f = finding(scenario(SANE, "services.api.pod.memory_limit_mb=65"), "pod_memory", "api")
    assert f.line == ("api at the base rate: if the database stalls, each of its 2 pods holds 50 req/s x 1 attempt x"
                      " the 3 s acquire timeout = 150 requests, x 16 KB + 64 MB at rest = 66 MB, above its 65 MB limit:"
                      " OOMKilled with all of them (the article: a 5 s acquire timeout wedges the event loop with"
                      " waiting promises; shrink it)")
    assert f.figures["held"] == 150 and f.figures["memory_mb"] == round(64 + 150 * 16 / 1024, 3)
