"""Two stories that compare: the article's sane defaults against every original story, and
background jobs in the API's pool or in a pool of their own.

`python tests/test_stories.py` prints the sane defaults' table (each story before -> after),
the figures scenarios/sane_defaults.toml's description quotes.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from shipped import run

from spiralsim import load_scenario
from spiralsim.vocabulary import FAILURE_KINDS

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SANE_DEFAULTS = SCENARIOS / "sane_defaults.toml"
BACKGROUND_JOBS = SCENARIOS / "background_jobs.toml"

# ---------------------------------------------------------------- the sane defaults

#: The article's "A Sane Default For New Services", as keys: the pool's four numbers, the
#: role's two timeouts, the pool's 'error' listener. Its withTransaction helper (try/finally)
#: is `leak_on_error = false` on every transaction endpoint (see `sane_overrides`).
SANE_DATABASE = ("statement_timeout=20s", "idle_in_transaction_session_timeout=60s")
SANE_SERVICE = ("pool.max=10", "pool.idle_timeout=30s", "pool.acquire_timeout=3s", "pool.max_lifetime=1h",
                "pod.crash_on_pool_error=false")


def sane_overrides(scenario) -> tuple[str, ...]:
    """The sane defaults as `--set` overrides of `scenario`: the same for every service.

    Not set: the client listener (`crash_on_client_error` stays true): the article's listener
    is the pool's, for idle clients ("pg pool error (idle client)"), and its helper's catch
    sees a failed query, not an 'error' event on a checked-out client. `orphan_rate` stays:
    a code path that returns before COMMIT is the bug the timeouts backstop.
    """
    out = [f"database.{s}" for s in SANE_DATABASE]
    for name, service in scenario.services.items():
        out += [f"services.{name}.{s}" for s in SANE_SERVICE]
        out += [f"services.{name}.endpoints.{e}.leak_on_error=false"
                for e, endpoint in service.endpoints.items() if endpoint.kind == "transaction"]
        if service.pod.leaked_at_start:  # the helper never leaked: no leaks from before the run either
            out.append(f"services.{name}.pod.leaked_at_start=0")
    return tuple(out)


#: The seven original stories, and whether the sane defaults fix each (measured; the
#: description of sane_defaults.toml says why, with the figures).
FIXED = {
    "push_spike": False,           # max 10 x 12 pods + 50 > 97: the arithmetic and the latency signal
    "slow_query": False,           # a 500 ms plan, and retries at once: the pool serves 20 of 100 req/s
    "retry_storm": False,          # acquire 3 s outlives the clients' 2 s: waiters for callers that left
    "leak": True,                  # the helper: nothing leaks
    "idle_in_transaction": True,   # the pool's 30 s idle timeout closes the orphan (the server's 60 s later)
    "shared_database": False,      # 9 x 10 + 4 x 10 > 97: pool.max x pods again
    "db_restart": False,           # no crash loop, but the failover's 30 s fail all the same
}
FAR_FEWER = 4  # "far fewer" bad requests: at most a quarter of the original's


def bad(summary: dict) -> int:
    """Bad requests over all services: failed + slow (the error budget's count)."""
    return sum(s["impact"]["failed"] + s["impact"]["slow"] for s in summary["services"].values())


def failed(summary: dict) -> int:
    return sum(s["failures_total"] for s in summary["services"].values())


def requests(summary: dict) -> int:
    return sum(s["requests"] for s in summary["services"].values())


def hurt(summary: dict) -> bool:
    """A story with an incident: not stable, and more than 1 % of its requests bad."""
    return summary["outcome"] != "stable" and bad(summary) > 0.01 * requests(summary)


def fixed(before: dict, after: dict) -> bool:
    """The sane defaults fix a story when it was hurt and with them it ends stable or recovered,
    with at most a quarter of its bad requests (failed + slow; not failed alone: a shorter
    acquire timeout turns requests that hang into requests that fail)."""
    return (hurt(before) and after["outcome"] in ("stable", "recovered")
            and bad(after) * FAR_FEWER <= bad(before))


def story(name: str) -> tuple[dict, dict]:
    """(the story's summary, the summary with the sane defaults); push_spike's is sane_defaults.toml."""
    path = SCENARIOS / f"{name}.toml"
    before = run(path).summary
    if name == "push_spike":
        return before, run(SANE_DEFAULTS).summary
    return before, run(path, *sane_overrides(load_scenario(path))).summary


def test_the_table_holds_the_seven_original_stories():
    shipped = {p.stem for p in SCENARIOS.glob("*.toml")}
    assert len(FIXED) == 7 and set(FIXED) <= shipped


@pytest.mark.parametrize("name", FIXED)
def test_the_sane_defaults_fix_what_the_table_says(name):
    """The seven runs with the sane defaults take about 30 s together (leak's 8 hours: 8 s)."""
    before, after = story(name)
    assert hurt(before), name
    assert fixed(before, after) == FIXED[name], (name, before["outcome"], after["outcome"], bad(before), bad(after))


def test_with_the_helper_nothing_leaks():
    before, after = story("leak")
    assert before["services"]["api"]["leaked"] > 0
    assert after["outcome"] == "stable" and after["services"]["api"]["leaked"] == 0


def test_sane_defaults_is_push_spike_with_the_sane_defaults_and_nothing_else():
    push = SCENARIOS / "push_spike.toml"
    told = {"name", "title", "description", "variants"}
    ours = load_scenario(SANE_DEFAULTS).model_dump(exclude=told)
    assert ours == load_scenario(push, sane_overrides(load_scenario(push))).model_dump(exclude=told)


def test_the_sane_defaults_end_db_restarts_crash_loop_but_not_its_failover():
    """Not fixed by the count, but the story's own harm is gone: no pod crashes, no 503s;
    what fails is what arrived while the database refused every connection."""
    before, after = story("db_restart")
    api_before, api = before["services"]["api"], after["services"]["api"]
    assert api_before["crashes"] > 0 and api_before["failures"]["no_ready_pod"] > 0
    assert api["crashes"] == 0 and api["failures"]["no_ready_pod"] == 0
    assert {k for k, n in api["failures"].items() if n} == {"connection_terminated"}
    assert api["failures_total"] < api_before["failures_total"]
    assert after["recovery_s"] < before["recovery_s"]


def test_the_sane_defaults_make_push_spike_fail_faster_without_its_leaks():
    """The helper ends the leaks, and the 3 s acquire timeout turns hung requests into failed
    ones: more fail, fewer are slow, the worst latency falls; the starved pods are refused as before."""
    before, after = story("push_spike")
    api_before, api = before["services"]["api"], after["services"]["api"]
    assert api_before["leaked"] > 0 and api["leaked"] == 0
    assert api["failures_total"] > api_before["failures_total"]
    assert api["impact"]["slow"] < api_before["impact"]["slow"]
    assert api["p99_ms"]["during"] < api_before["p99_ms"]["during"]
    assert after["database"]["refused_connects"] > 0 and api["failures"]["too_many_clients"] > 0


def test_the_description_tells_the_same_table():
    """Each story's line in sane_defaults.toml's description says fixed or not fixed as FIXED does."""
    description = load_scenario(SANE_DEFAULTS).description
    assert f"they fix {sum(FIXED.values())} of the {len(FIXED)}" in " ".join(description.split())
    lines = description.splitlines()
    for name, is_fixed in FIXED.items():
        (line,) = [ln for ln in lines if ln.strip().startswith(name + " ")]
        assert line.rstrip().endswith("not fixed") != is_fixed, line
        assert line.rstrip().endswith("fixed"), line


# ---------------------------------------------------------------- background jobs


def _variant(name: str) -> tuple[str, ...]:
    (only,) = [v for v in load_scenario(BACKGROUND_JOBS).variants if v.name == name]
    return tuple(only.set)


def _conserved(result) -> None:
    for name, s in result.summary["services"].items():
        assert s["requests"] == s["successes"] + s["failures_total"] + s["in_flight"], name
        c = result.recording.services[name].cols
        failures = sum(c[k.column].sum() for k in FAILURE_KINDS)
        assert c["arrivals"].sum() == c["successes"].sum() + failures + result.recording.services[name].open_requests


def test_a_stuck_job_in_the_shared_pool_takes_the_api_down():
    result = run(BACKGROUND_JOBS)
    _conserved(result)
    api = result.summary["services"]["api"]
    assert result.summary["services"]["jobs"]["requests"] == 0  # the jobs run in api's pods
    assert api["failures"]["acquire_timeout"] > 0.1 * api["requests"]
    assert api["impact"]["degraded_s"] > 100 and api["peak_db_connections"] == 20
    assert api["p99_ms"]["before"] < 100 and api["p99_ms"]["after"] < 100  # only while the jobs are stuck


def test_a_separate_pool_of_two_keeps_the_api_up():
    result = run(BACKGROUND_JOBS, *_variant("separate_pool"))
    _conserved(result)
    api, jobs = result.summary["services"]["api"], result.summary["services"]["jobs"]
    assert api["failures_total"] == 0 and api["impact"]["slow"] == 0 and api["impact"]["degraded_s"] == 0
    assert jobs["requests"] > 0 and jobs["failures_total"] > 0  # the jobs pay for their own stuck ones
    assert jobs["peak_db_connections"] <= 2


def test_a_statement_timeout_contains_the_stuck_job_but_does_not_isolate_it():
    def api_bad(summary: dict) -> int:
        return summary["services"]["api"]["impact"]["failed"] + summary["services"]["api"]["impact"]["slow"]

    result = run(BACKGROUND_JOBS, *_variant("statement_timeout"))
    _conserved(result)
    assert 0 < api_bad(result.summary) * FAR_FEWER < api_bad(run(BACKGROUND_JOBS).summary)  # fewer, not none
    assert result.summary["services"]["api"]["peak_db_connections"] == 20


def test_the_variants_move_the_jobs_and_nothing_else():
    """Both arms offer the API 200 user requests and the jobs 0.5 a second."""
    base = load_scenario(BACKGROUND_JOBS)
    moved = load_scenario(BACKGROUND_JOBS, _variant("separate_pool"))
    weights = {e: v.weight for e, v in base.services["api"].endpoints.items()}
    rate = base.services["api"].traffic.rate
    assert rate * weights["get_item"] / sum(weights.values()) == moved.services["api"].traffic.rate
    assert rate * weights["job"] / sum(weights.values()) == moved.services["jobs"].traffic.rate
    assert moved.services["api"].endpoints["job"].weight == 0
    same = {"weight"}
    assert (base.services["api"].endpoints["job"].model_dump(exclude=same)
            == moved.services["jobs"].endpoints["job"].model_dump(exclude=same))


# ---------------------------------------------------------------- the table, for the description


def main() -> None:
    for name in FIXED:
        before, after = story(name)
        print(f"{name:20} {before['outcome']} -> {after['outcome']}; failed {failed(before):,} -> {failed(after):,};"
              f" bad {bad(before):,} -> {bad(after):,} of {requests(before):,};"
              f" {'fixed' if fixed(before, after) else 'not fixed'}")


if __name__ == "__main__":
    main()
