"""bench/traffic.py, bench/peers.py and bench/run.py (issue #16): the traffic cases run the product in
virtual time and break their invariants loudly, the modelled SDK loop is the real SDK's, the indexed
store answers as the scanning one, and the bench's exit code says FAIL."""

from __future__ import annotations

import json
import os
import random
from dataclasses import replace

import inbetween.observability  # noqa: F401 - the pipeline's logger made first, at the session's level
import pytest
from inbetween.domain.models import DueKind, InputObject, Job, JobSpec, JobStatus
from inbetween_local.memory import InMemoryJobStore, ManualClock

# bench/__init__ quiets Powertools through the environment: that must not reach the other tests of the
# session, so what it adds to the environment is taken back at once (as test_bench_backlog does)
_ENV_BEFORE = dict(os.environ)
from bench import run as bench_run  # noqa: E402
from bench import traffic  # noqa: E402
from bench.common import Figure  # noqa: E402
from bench.peers import run_peer  # noqa: E402
from bench.virtual import IndexedJobStore, run_scenario  # noqa: E402

for _name in set(os.environ) - set(_ENV_BEFORE):
    del os.environ[_name]


# ------------------------------------------------------------------------------------------ the cases
def test_a_small_kf2v_case_keeps_every_invariant_and_gives_every_figure():
    # Given a small kf2v burst at quota 2 through the product's use cases
    run = run_scenario(traffic.kf2v(8, seed=3))

    # Then nothing is broken, and the figures are the product's: slots busy, queries counted per job
    assert traffic.invariants(run) == []
    m = traffic.measure(run)
    assert m["jobs"] == 8 and len(run.tasks) == 8
    assert 1.0 <= m["queries_per_job"] <= 20
    assert 0.5 < m["busy"] <= 1.0
    assert 0 <= m["p95_s"] < 60
    assert m["aws_per_job"] > 5  # every store, S3, SNS and SQS call counted
    assert run.aws_calls["sns.Publish"] == 8


def test_the_same_seed_gives_the_same_figures_and_another_seed_others():
    sc = traffic.wan27(10, push=True, seed=4)

    first, again = traffic.measure(run_scenario(sc)), traffic.measure(run_scenario(sc))
    other = traffic.measure(run_scenario(replace(sc, seed=5)))

    assert first == again
    assert first["makespan_s"] != other["makespan_s"]


def test_a_duplicate_notification_a_second_task_and_a_throttle_each_break_an_invariant():
    run = run_scenario(traffic.kf2v(4, seed=1))
    job = next(iter(run.arrivals))
    task = run.tasks[0]

    twice = replace(run, notified={**run.notified, job: run.notified[job] * 2})
    extra_task = replace(run, tasks=[*run.tasks, replace(task, task_id="task-extra")])
    throttled = replace(run, throttled={"Throttling.RateQuota": 1})

    assert any("exactly one notification" in b for b in traffic.invariants(twice))
    assert any("5 provider tasks for 4 jobs" in b for b in traffic.invariants(extra_task))
    assert any("Throttling" in b for b in traffic.invariants(throttled))


def test_a_crashing_scenario_is_a_failing_invariant_figure_not_an_exception(monkeypatch):
    def boom(name, sc):
        raise RuntimeError("the world fell over")

    monkeypatch.setattr(traffic, "run_named", boom)
    case = traffic.Case(
        "tiny", "tiny", traffic.kf2v(2), (traffic.Goal("busy", ">=", 0.5),), peers=(), seeds=(1,)
    )

    figures = traffic.figures(traffic.run_cases([case], workers=1))

    invariant = next(f for f in figures if f.key == "traffic.tiny.invariants")
    assert invariant.passed is False and invariant.invariant
    assert "the world fell over" in invariant.note
    busy = next(f for f in figures if f.key == "traffic.tiny.busy")
    assert busy.value is None and busy.passed is False  # a goal with no figure is a FAIL, not a skip


def test_peers_run_the_same_burst_and_the_figures_sit_beside_the_pipelines():
    case = traffic.Case(
        "beside",
        "beside",
        traffic.kf2v(6),
        (traffic.Goal("queries_per_job", "<=", 8),),
        makespan_vs_sdk=1.03,
        seeds=(1, 2),
    )

    figures = {f.key: f for f in traffic.figures(traffic.run_cases([case], workers=1))}

    queries = figures["traffic.beside.queries_per_job"]
    assert (
        "SDK loop" in queries.baseline
        and "fixed 15 s" in queries.baseline
        and "list poller" in queries.baseline
    )
    assert set(queries.detail["per_seed"]) == {1, 2}
    sdk = [m["queries_per_job"] for m in queries.detail["peers"]["sdk_loop"].values()]
    assert min(sdk) > 15  # the SDK polls every 1-5 s: dozens of queries per 1-5 minute task
    assert figures["traffic.beside.makespan_vs_sdk"].value is not None


# ------------------------------------------------------------------------------------------ the peers
@pytest.mark.parametrize(
    "sc",
    [
        traffic.kf2v(5, seed=2),
        # 25 threads at the account's 20 queries a second: refused queries, resumed waits
        traffic.wan27(30, 25, seed=6),
    ],
    ids=["kf2v", "query-throttled"],
)
def test_the_modelled_sdk_loop_makes_the_real_sdks_requests_at_the_same_times(sc):
    real, modelled = run_peer("sdk_loop", sc), run_peer("sdk_model", sc)

    assert real.finished and modelled.finished
    assert (real.creates, real.queries, real.throttled) == (
        modelled.creates,
        modelled.queries,
        modelled.throttled,
    )
    assert real.notified == modelled.notified
    assert [(t.created, t.end) for t in real.tasks] == [(t.created, t.end) for t in modelled.tasks]


def test_the_sdk_loop_leaves_the_sdk_as_it_found_it():
    import dashscope
    from dashscope.client import base_api
    from requests.adapters import HTTPAdapter

    before = (base_api.time, HTTPAdapter.send, dashscope.api_key)
    run_peer("sdk_loop", traffic.kf2v(2))
    assert (base_api.time, HTTPAdapter.send, dashscope.api_key) == before


# ------------------------------------------------------------------------------------------ the store
def _job(n: int, model: str) -> Job:
    return Job(
        job_id=f"j{n}/r",
        job_name=f"j{n}",
        run_id="r",
        status=JobStatus.WAITING,
        spec=JobSpec(model=model, resolution="720P", prompt="p"),
        inputs={"first": InputObject(key=f"inbox/j{n}/first.png", etag="e", size=1)},
        created_at=0.0,
        updated_at=0.0,
    )


def test_the_indexed_store_answers_due_jobs_as_the_scanning_store_does():
    # Given the tests' scanning store and the bench's indexed one, and one random script of due writes
    rng = random.Random(7)
    clock = ManualClock(1_000.0)
    stores = [InMemoryJobStore(clock), IndexedJobStore(clock)]
    models = ("wan2.7-i2v", "wan2.2-kf2v-flash")
    answers: list[list] = [[], []]
    for step in range(600):
        op, n, at = rng.random(), rng.randrange(200), 1_000.0 + rng.randrange(50)
        limit, now = rng.choice((1, 3, 100)), 1_000.0 + rng.randrange(60)
        for store, answer in zip(stores, answers, strict=True):
            if op < 0.3:  # a waiting job, queued per model
                answer.append(store.add_job(_job(n, models[n % 2]), due=(DueKind.ADMIT, at)))
            elif op < 0.45:  # a submitted job's next check
                answer.append(store.add_job(_job(n, models[n % 2]), due=(DueKind.POLL, at)))
            elif op < 0.6:
                answer.append(store.postpone(f"j{n}/r", DueKind.POLL, at))
            elif op < 0.7:
                store.clear_due(f"j{n}/r")
            else:
                for kind, model in (
                    (DueKind.ADMIT, models[0]),
                    (DueKind.ADMIT, models[1]),
                    (DueKind.POLL, None),
                ):
                    answer.append([j.job_id for j in store.due_jobs(kind, now, model=model, limit=limit)])
                answer.append(store.next_due_at(DueKind.POLL))
        # Then every answer is the same, step by step
        assert answers[0] == answers[1], f"step {step}"
    assert sum(1 for a in answers[0] if isinstance(a, list) and len(a) > 1) > 20  # real questions were asked


# ------------------------------------------------------------------------------------------ run.py
def _figure(key: str, passed: bool | None, value: float | None = 1.0, invariant: bool = False) -> Figure:
    return Figure(key=key, name=key, value=value, unit="", goal="", passed=passed, invariant=invariant)


@pytest.mark.parametrize(
    ("figures", "quick", "code"),
    [
        ([_figure("a", True), _figure("b", None)], False, 0),
        ([_figure("a", True), _figure("goal", False)], False, 1),
        ([_figure("a", True), _figure("goal", False)], True, 0),  # quick: goals on small numbers do not count
        ([_figure("inv", False, invariant=True)], True, 1),
        ([_figure("a", None, value=None)], True, 1),  # missing, even informational
        ([], True, 1),  # a module that gave no figure
    ],
    ids=["all-pass", "a-fail", "quick-goal-fail", "quick-invariant", "missing", "none"],
)
def test_the_bench_exits_non_zero_on_a_fail_or_a_missing_figure(monkeypatch, tmp_path, figures, quick, code):
    monkeypatch.setattr(bench_run, "OUT", tmp_path)
    monkeypatch.setattr(bench_run, "_timed_run", lambda name, q: (list(figures), 0.1))

    argv = ["--only", "poller_reads"] + (["--quick"] if quick else [])
    assert bench_run.main(argv) == code
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["command"] == ("make bench-quick" if quick else "make bench")


def test_a_module_that_raises_is_a_failing_figure(monkeypatch):
    import importlib

    def broken(name):
        raise ImportError("no such module")

    monkeypatch.setattr(importlib, "import_module", broken)
    [figure], _ = bench_run._timed_run("traffic", True)
    assert figure.passed is False and figure.invariant and "no such module" in figure.note


def test_a_partial_published_run_keeps_the_other_modules_figures_from_the_last_full_run(
    monkeypatch, tmp_path
):
    # Given a full run's results, and a re-run of one module published
    monkeypatch.setattr(bench_run, "OUT", tmp_path)
    monkeypatch.setattr(bench_run, "ROOT", tmp_path)
    (tmp_path / "bench").mkdir()
    old = [dict(_figure("cost.idle_month", None).to_dict()), dict(_figure("traffic.old", True).to_dict())]
    full = {"date": "2026-12-01", "command": "make bench", "quick": False, "wall_s": 600.0, "cpu_s": 900.0,
            "figures": old}  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps(full))
    monkeypatch.setattr(bench_run, "_timed_run", lambda name, q: ([_figure("traffic.new", True)], 0.1))

    assert bench_run.main(["--only", "traffic", "--publish"]) == 0

    # Then the re-run module's figures replace its old ones, the others are kept, and the page says so
    written = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert [(f["key"], f["module"]) for f in written["figures"]] == [
        ("cost.idle_month", "aws_cost"),
        ("traffic.new", "traffic"),
    ]
    assert written["kept_from"]["date"] == "2026-12-01"
    assert "full run's of 2026-12-01" in (tmp_path / "docs" / "bench.md").read_text()


def test_a_partial_run_after_another_partial_one_keeps_the_figures_of_the_published_full_run(
    monkeypatch, tmp_path
):
    # Given this machine's last run was itself partial, and a full run is published
    monkeypatch.setattr(bench_run, "OUT", tmp_path / "out")
    monkeypatch.setattr(bench_run, "ROOT", tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "bench").mkdir()
    partial = {"date": "2026-12-02", "command": "python -m bench.run --only traffic", "quick": False,
               "wall_s": 60.0, "figures": [dict(_figure("traffic.mid", True).to_dict())]}  # fmt: skip
    published = {"date": "2026-12-01", "command": "make bench", "quick": False, "wall_s": 600.0,
                 "figures": [dict(_figure("stitch.size", True).to_dict())]}  # fmt: skip
    (tmp_path / "out" / "results.json").write_text(json.dumps(partial))
    (tmp_path / "bench" / "results.json").write_text(json.dumps(published))
    monkeypatch.setattr(bench_run, "_timed_run", lambda name, q: ([_figure("traffic.new", True)], 0.1))

    assert bench_run.main(["--only", "traffic", "--publish"]) == 0

    # Then the published page has every module: the re-run one and the full run's others
    written = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert [f["key"] for f in written["figures"]] == ["traffic.new", "stitch.size"]
    assert written["kept_from"]["date"] == "2026-12-01"


def test_a_partial_run_is_not_published_alone(monkeypatch, tmp_path, capsys):
    # Given no full run on record (a published page of one module's figures would hide all the others)
    monkeypatch.setattr(bench_run, "OUT", tmp_path / "out")
    monkeypatch.setattr(bench_run, "ROOT", tmp_path)
    ran = []
    monkeypatch.setattr(bench_run, "_timed_run", lambda name, q: ran.append(name) or ([], 0.1))

    with pytest.raises(SystemExit) as exit_:
        bench_run.main(["--only", "traffic", "--publish"])

    # Then it refuses before running anything, and says what to run
    assert exit_.value.code == 2 and not ran
    assert "run `make bench` first" in capsys.readouterr().err
    assert not (tmp_path / "bench" / "results.json").exists()


def test_the_timed_modules_run_alone_before_the_request_counts_start_beside_the_rest(monkeypatch, tmp_path):
    # Given the modules recording when each one runs (aws_cost in its own process, beside others)
    from concurrent.futures import Future

    monkeypatch.setattr(bench_run, "OUT", tmp_path)
    events: list[tuple[str, str]] = []

    def run(name, quick):
        events.append(("run", name))
        return [_figure(f"{name}.figure", True)], 0.1

    class BesidePool:
        def __init__(self, *args, **kwargs):
            pass

        def submit(self, fn, name, quick):
            events.append(("beside", name))
            done: Future = Future()
            done.set_result(run(name, quick))
            events.pop()
            return done

        def shutdown(self):
            pass

    monkeypatch.setattr(bench_run, "_timed_run", run)
    monkeypatch.setattr(bench_run, "ProcessPoolExecutor", BesidePool)
    # When the bench runs them
    assert bench_run.main(["--only", "aws_cost,cold_start,traffic,completion"]) == 0
    # Then what times itself on the clock ran before aws_cost began; the virtual-time traffic ran beside it
    assert events == [
        ("run", "cold_start"),
        ("run", "completion"),
        ("beside", "aws_cost"),
        ("run", "traffic"),
    ]


def test_every_full_case_renders_its_settings_and_figures_before_anything_runs():
    # Given every case of the full run, each with its peers and no run yet (the full run is 20 minutes:
    # a name or label missing from the tables would otherwise show only at its end)
    from bench import traffic

    for case in traffic.cases(quick=False):
        result = traffic.CaseResult(case, peers={peer: {} for peer in case.peers})
        # When its settings and figures are rendered
        settings = traffic._settings(case)
        figures = traffic.figures([result])
        # Then each names its peers and its figures, and says what it lacks rather than failing
        assert settings["peers"] == (", ".join(traffic.PEER_LABELS[p] for p in case.peers) or "none")
        assert figures and all(f.name and f.unit is not None for f in figures)
        assert all(f.value is None or f.invariant for f in figures)
