"""Provider traffic in virtual time (issue #16): the pipeline's own use cases through each workload, on
at least five seeds, beside the peers at the same quota, with the invariants asserted in every run.

Each case is a ``bench.virtual.Scenario`` (the product's admission, poller tick, push and completion on the
in-memory adapters, every outside-world latency modelled, see ``bench.virtual``), run once per seed; the
peers (``bench.peers``: the SDK's own ``VideoSynthesis.call`` loop as Q threads, a fixed 15 s per-task
poller, a plain list-based poller) run the same burst on the same seeded provider. A figure is the worst
of the seeds (the goal holds on it); the median and the spread stand beside it, and the peers' worst.

- Invariants (each a FAIL): every job STORED (final), one provider task per job, exactly one
  notification per job, zero Throttling answers of any kind (create rate, allocation, query rate), and no
  crash (a scenario that raises, or an event that raises inside it).
- Latency is a job's task end to its notification (what the product adds to the provider's own time).
- Busy slots: the share of the slots' time the model's tasks held them while work was still waiting to
  start (from the first task's start to the last one's; the drain after it is nobody's to fill).
- Makespan: the first drop to the last notification (a peer's: to the last video URL known).
- Throughput: the ideal's share, ideal = quota / mean generation time (the drawn times of that run).

Same seed, same figures on any machine: nothing here reads the wall clock. Scenarios run in two worker
processes (the figures do not depend on how fast they run).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from typing import Any

from inbetween.domain.catalog import model_spec
from inbetween.usecases.admission import provider_backlog
from inbetween_local.memory import test_settings

from bench.common import OUT, Figure, percentile
from bench.virtual import LATENCY, Family, Faults, Run, Scenario, run_scenario

KF2V = "wan2.2-kf2v-flash"
WAN27 = "wan2.7-i2v"
SEEDS = (1, 2, 3, 4, 5)
WORKERS = 2
PUSH_DELAY_MAX_S = LATENCY.push_s[1]


def kf2v(jobs: int, quota: int = 2, **kw: Any) -> Scenario:
    """kf2v flash: ``quota`` running (2 published), 2 creates a second, no provider-side queue (so no
    backlog: admission holds exactly the running tasks, whatever PROVIDER_BACKLOG says)."""
    kw.setdefault("backlog", None)  # the product's default (auto), which a model without a queue ignores
    return Scenario(
        jobs=jobs, model=KF2V, concurrency=quota, provider_queue=0, listed_queue=None, submit_per_s=2.0, **kw
    )


def wan27(jobs: int, quota: int = 5, **kw: Any) -> Scenario:
    """wan2.7-i2v: ``quota`` running (5 published; a raised quota keeps the 5 creates a second), a queue
    of 500 PENDING beyond them, the product's default PROVIDER_BACKLOG (auto: 1 at quota 5, 4 at 20...)."""
    kw.setdefault("backlog", None)  # the product's default (PROVIDER_BACKLOG auto)
    return Scenario(jobs=jobs, model=WAN27, concurrency=quota, provider_queue=500, listed_queue=500, **kw)


HEAVY = Faults(
    straggler_every=50, straggler_s=3 * 3600.0, slow_pending_share=0.1, slow_pending_s=(30.0, 180.0)
)


@dataclass(frozen=True)
class Goal:
    metric: str  # a key of measure()'s figures
    op: str  # "<=" or ">="
    limit: float
    model: str | None = None  # a family of a two-family case (None: the first)

    def holds(self, value: float | None) -> bool:
        if value is None:
            return False
        return value <= self.limit if self.op == "<=" else value >= self.limit

    def text(self) -> str:
        return f"{self.op} {self.limit:g}"


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    scenario: Scenario
    goals: tuple[Goal, ...]
    peers: tuple[str, ...] = ("sdk_loop", "fixed_poller", "list_poller")
    # makespan against the SDK loop: at most this many times its makespan (None: no such goal)
    makespan_vs_sdk: float | None = None
    queries_vs_sdk: float | None = None  # at most this share of the SDK loop's queries per job
    shown: tuple[str, ...] = ()  # other figures, informational
    seeds: tuple[int, ...] = SEEDS


def _push_p95_goal() -> Goal:
    return Goal("p95_s", "<=", 3.0 + PUSH_DELAY_MAX_S)


# A raised quota's deployment gives admission two API keys of the account: a submit lane each (the
# creates of one lane are serialized, ~2 a second; the provider allows 5 an account)
RAISED_QUOTA_KEYS = 2


def cases(quick: bool) -> list[Case]:
    """The workloads. Quick: one seed, small numbers (the same code paths, not the same figures)."""
    n = 20 if quick else 100
    big = 400 if quick else 5000
    burst = 100 if quick else 1000
    kf2v_goals = (Goal("queries_per_job", "<=", 8), Goal("busy", ">=", 0.95), Goal("p95_s", "<=", 15))
    wan_goals = (Goal("queries_per_job", "<=", 2), Goal("p95_s", "<=", 15), Goal("busy", ">=", 0.99))
    out = [
        Case("kf2v_q2", f"kf2v flash, quota 2, push off, {n} jobs, 1-5 min", kf2v(n), kf2v_goals,
             makespan_vs_sdk=1.03),
        Case("kf2v_q2_heavy", f"kf2v flash, quota 2, push off, {n} jobs, heavy tail + stragglers",
             kf2v(n, generation="heavy", faults=HEAVY), (), shown=("queries_per_job", "busy", "p95_s")),
        # a raised kf2v quota: 20 slots filled at its 2 creates a second, where the create spacing's margin
        # meets the network's jitter (the old scaled bench saw Throttling.RateQuota here)
        Case("kf2v_q20", f"kf2v flash, quota 20, push off, {2 * n} jobs", kf2v(2 * n, 20),
             (Goal("queries_per_job", "<=", 2), Goal("p95_s", "<=", 15), Goal("busy", ">=", 0.97)),
             makespan_vs_sdk=1.03, shown=("creates_per_s",)),
        Case("wan27_q5", f"wan2.7, quota 5, push off, {n} jobs", wan27(n), wan_goals,
             makespan_vs_sdk=1.0, queries_vs_sdk=0.1),
        Case("wan27_q5_push", f"wan2.7, quota 5, push on, {n} jobs", wan27(n, push=True),
             (Goal("queries_per_job", "<=", 1.05), _push_p95_goal()), makespan_vs_sdk=1.0, queries_vs_sdk=0.1,
             shown=("busy",)),
        Case("wan27_q5_push_lossy", f"wan2.7, quota 5, push on, 10 % of events lost, {n} jobs",
             wan27(n, push=True, push_loss=0.1), (Goal("queries_per_job", "<=", 1.3),),
             peers=(), shown=("p95_s", "busy", "events_lost")),
        Case("wan27_q20", f"wan2.7, quota 20, push off, {2 * n} jobs", wan27(2 * n, 20), wan_goals,
             makespan_vs_sdk=1.0, queries_vs_sdk=0.1),
        Case("burst", f"wan2.7, quota 5, push off, a burst of {burst} jobs", wan27(burst), wan_goals,
             makespan_vs_sdk=1.0, queries_vs_sdk=0.1, shown=("first_submit_s",)),
        Case("two_families", f"kf2v quota 2 ({n // 2} jobs) and wan2.7 quota 5 ({n} jobs) at once",
             kf2v(n // 2, also=(Family(WAN27, n, 5, 500, 500, 5.0),)),
             kf2v_goals + tuple(replace(g, model=WAN27) for g in wan_goals), peers=()),
    ]  # fmt: skip
    for quota in (50, 100, 200):
        goals = wan_goals + ((Goal("throughput", ">=", 0.97),) if quota == 100 else ())
        shown = ("first_submit_s", "creates_per_s", "list_rows_max", "aws_per_job")
        if quota != 100:
            shown = ("throughput", *shown)
        out.append(
            Case(
                f"wan27_q{quota}",
                f"wan2.7, quota {quota}, push off, {big} jobs, {RAISED_QUOTA_KEYS} API keys",
                wan27(big, quota, api_keys=RAISED_QUOTA_KEYS),
                goals,
                peers=BIG_PEERS,
                makespan_vs_sdk=1.0,
                queries_vs_sdk=0.1,
                shown=shown,
            )  # fmt: skip
        )
    # the same burst at quota 200 through one API key: the single submit lease the lanes replace, beside
    # them in the same run (no goals: what one key sustains is the figure)
    out.append(
        Case(
            "wan27_q200_one_key",
            f"wan2.7, quota 200, push off, {big} jobs, 1 API key (the single submit lease)",
            wan27(big, 200),
            (),
            peers=(),
            shown=("creates_per_s", "busy", "p95_s", "aws_per_job"),
        )
    )
    if quick:
        out = [replace(c, seeds=(1,)) for c in out]
    return out


def backlog_of(sc: Scenario, family: Family) -> int:
    """The tasks admission kept queued at the provider beyond ``family``'s slots in ``sc`` (the product's
    own rule, so that "auto" reads as the number it chose)."""
    interval = dict(sc.env).get("POLL_INTERVAL_SECONDS")
    settings = test_settings(
        provider_backlog=sc.backlog, **({"poll_interval_s": float(interval)} if interval else {})
    )
    return provider_backlog(settings, family.concurrency, model_spec(family.model), family.provider_queue)


# ---- one run's figures ----------------------------------------------------------------------------------
def measure(run: Run, model: str | None = None) -> dict[str, Any]:
    """The figures of one run for one model family (None: the scenario's first)."""
    sc = run.scenario
    model = model or sc.model
    family = next(f for f in sc.families if f.model == model)
    jobs = [j for j, m in run.model_of.items() if m == model] or list(run.arrivals)
    tasks = [t for t in run.tasks if t.model == model]
    end_of = {t.task_id: t.end for t in tasks}
    out: dict[str, Any] = {"jobs": len(jobs)}
    notified = {j: run.notified[j][0] for j in jobs if run.notified.get(j)}
    if not tasks or not notified:
        return out
    latencies = [
        notified[j] - end_of[run.task_of[j] or ""] for j in notified if (run.task_of.get(j) or "") in end_of
    ]
    first_arrival = min(run.arrivals[j] for j in jobs)
    first_start, last_start = min(t.start for t in tasks), max(t.start for t in tasks)
    held = sum(max(0.0, min(t.end, last_start) - t.start) for t in tasks)
    generated = sum(t.end - (t.start if t.running_at is None else t.running_at) for t in tasks)
    makespan = max(notified.values()) - first_arrival
    created = sorted(t.created for t in tasks)
    ramp = created[: min(len(created), family.concurrency + backlog_of(sc, family))]
    queries = run.queries_by_model.get(model, 0) + run.lists_by_model.get(model, 0)
    out.update(
        queries_per_job=queries / len(jobs),
        p50_s=percentile(latencies, 50),
        p95_s=percentile(latencies, 95),
        busy=held / (family.concurrency * (last_start - first_start)) if last_start > first_start else None,
        makespan_s=makespan,
        throughput=generated / (family.concurrency * makespan) if makespan > 0 else None,
        first_submit_s=created[0] - first_arrival,
        creates_per_s=(len(ramp) - 1) / (ramp[-1] - ramp[0])
        if len(ramp) > 1 and ramp[-1] > ramp[0]
        else None,
        list_rows_max=run.list_rows_max,
        aws_per_job=sum(run.aws_calls.values()) / max(1, len(run.arrivals)),
        events_lost=run.events_lost,
        throttled=sum(run.throttled.values()),
        queries=queries,
    )
    return out


def invariants(run: Run) -> list[str]:
    """What must hold in every scenario; each entry names one that did not."""
    broken = [f"crash in {name} at {at - run.scenario.first_drop_s:.1f}: {trace.strip().splitlines()[-1]}"
              for at, name, trace in run.errors[:3]]  # fmt: skip
    sc = run.scenario
    if not run.finished:
        broken.append(f"not every job was notified within {sc.horizon_s:.0f} s")
    if len(run.arrivals) != sc.total_jobs:
        broken.append(f"{len(run.arrivals)} of {sc.total_jobs} jobs dropped")
    not_stored = {j: s for j, s in run.statuses.items() if s != "STORED"}
    if not_stored:
        broken.append(f"{len(not_stored)} jobs not STORED (e.g. {next(iter(not_stored.items()))})")
    if len(run.tasks) != len(run.arrivals):
        broken.append(f"{len(run.tasks)} provider tasks for {len(run.arrivals)} jobs")
    owned = [t for t in run.task_of.values() if t]
    if len(set(owned)) != len(owned):
        broken.append("two jobs share a provider task")
    wrong = {j: len(run.notified.get(j, [])) for j in run.arrivals if len(run.notified.get(j, [])) != 1}
    if wrong:
        broken.append(
            f"{len(wrong)} jobs without exactly one notification (e.g. {next(iter(wrong.items()))})"
        )
    if run.throttled:
        broken.append(
            f"{sum(run.throttled.values())} Throttling answers {dict(sorted(run.throttled.items()))}"
        )
    return broken


# ---- running the cases ----------------------------------------------------------------------------------
Runner = Callable[[str, Scenario], Run]


def run_named(name: str, sc: Scenario) -> Run:
    """``pipeline`` or a peer's name: the run of that scenario."""
    if name == "pipeline":
        return run_scenario(sc)
    from bench.peers import run_peer

    return run_peer(name, sc)


def _one(name: str, sc: Scenario, models: tuple[str, ...]) -> dict[str, Any]:
    """A run's figures per model and its broken invariants; a crash is a broken invariant."""
    try:
        run = run_named(name, sc)
    except Exception as exc:  # noqa: BLE001 - a crashed scenario is a FAIL figure, not the end of the bench
        return {"broken": [f"the scenario crashed: {type(exc).__name__}: {exc}"], "by_model": {}}
    return {
        "broken": invariants(run) if name == "pipeline" else [],
        "by_model": {m: measure(run, m) for m in models},
        "throttled": dict(run.throttled),
    }


@dataclass
class CaseResult:
    case: Case
    pipeline: dict[int, dict[str, Any]] = field(default_factory=dict)  # seed -> _one()
    peers: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)  # peer -> seed -> _one()


def run_cases(chosen: list[Case], workers: int = WORKERS) -> list[CaseResult]:
    jobs = []
    for case in chosen:
        models = tuple(f.model for f in case.scenario.families)
        for seed in case.seeds:
            sc = replace(case.scenario, seed=seed)
            jobs.append((case.key, "pipeline", seed, sc, models))
            jobs.extend((case.key, peer, seed, sc, models) for peer in case.peers)
    jobs.sort(key=lambda j: -j[3].total_jobs)  # the longest first: the two workers end together
    results = {c.key: CaseResult(c) for c in chosen}
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = [(j, pool.submit(_one, j[1], j[3], j[4])) for j in jobs]
            done = [(j, f.result()) for j, f in futures]
    else:
        done = [(j, _one(j[1], j[3], j[4])) for j in jobs]
    for (key, name, seed, _, _), out in done:
        target = results[key].pipeline if name == "pipeline" else results[key].peers.setdefault(name, {})
        target[seed] = out
    return [results[c.key] for c in chosen]


# ---- the figures ----------------------------------------------------------------------------------------
UNITS = {"queries_per_job": "queries/job", "p95_s": "s", "busy": "", "throughput": "x ideal", "makespan_s": "s",
         "first_submit_s": "s", "creates_per_s": "creates/s", "list_rows_max": "tasks", "aws_per_job": "requests/job",
         "events_lost": "events"}  # fmt: skip
NAMES = {
    "queries_per_job": "provider queries per job (task queries + list pages)",
    "p95_s": "p95 notification latency (task end to notification)",
    "busy": "busy-slot fraction",
    "throughput": "throughput against the ideal (quota / mean generation time)",
    "first_submit_s": "time from the burst to the first submit",
    "creates_per_s": "creates per second sustained while filling the slots (a submit lane per API key)",
    "list_rows_max": "most tasks in one task-list window",
    "aws_per_job": "AWS requests per job",
    "events_lost": "push events lost",
}
HIGHER_IS_WORSE = {"queries_per_job", "p95_s", "makespan_s", "first_submit_s", "list_rows_max", "aws_per_job"}
PEER_LABELS = {
    "sdk_loop": "SDK loop",
    "sdk_model": "SDK loop (modelled)",
    "fixed_poller": "fixed 15 s",
    "list_poller": "list poller",
}
BIG_PEERS = ("sdk_model", "fixed_poller", "list_poller")


def _values(per_seed: dict[int, dict[str, Any]], metric: str, model: str) -> list[float]:
    return [
        float(v)
        for out in per_seed.values()
        if (v := out.get("by_model", {}).get(model, {}).get(metric)) is not None
    ]


def _worst(values: list[float], metric: str) -> float:
    return max(values) if metric in HIGHER_IS_WORSE else min(values)


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _spread(values: list[float]) -> str:
    return f"median {_fmt(statistics.median(values))}, range {_fmt(min(values))}-{_fmt(max(values))}"


def _peers_text(result: CaseResult, metric: str, model: str) -> str:
    parts = []
    for peer, per_seed in result.peers.items():
        values = _values(per_seed, metric, model)
        if values:
            parts.append(f"{PEER_LABELS[peer]} {_fmt(_worst(values, metric))}")
        else:
            parts.append(f"{PEER_LABELS[peer]}: no figure")
    return ("peers (worst): " + ", ".join(parts)) if parts else "no peers in this case"


def figures(results: list[CaseResult]) -> list[Figure]:
    out: list[Figure] = []
    for result in results:
        case = result.case
        sc = case.scenario
        settings = _settings(case)
        broken = {seed: o["broken"] for seed, o in result.pipeline.items() if o.get("broken")}
        out.append(
            Figure(
                key=f"traffic.{case.key}.invariants",
                name=f"invariants, {case.title}",
                value=float(len(result.pipeline) - len(broken)),
                unit=f"of {len(result.pipeline)} seeds",
                goal="all seeds: every job STORED, 1 task and 1 notification per job, 0 Throttling, no crash",
                passed=not broken and len(result.pipeline) == len(case.seeds),
                note="; ".join(f"seed {s}: " + "; ".join(b) for s, b in sorted(broken.items()))[:600],
                settings=settings,
                detail={"broken": broken},
                invariant=True,
            )
        )
        for goal in case.goals:
            out.append(_goal_figure(result, goal, settings))
        for metric in case.shown:
            out.append(_goal_figure(result, Goal(metric, "", 0.0), settings))
        if case.makespan_vs_sdk is not None and _sdk_peer(result):
            out.extend(_makespan_figures(result, settings))
        del sc
    return out


def _goal_figure(result: CaseResult, goal: Goal, settings: dict[str, Any]) -> Figure:
    case = result.case
    model = goal.model or case.scenario.model
    values = _values(result.pipeline, goal.metric, model)
    worst = _worst(values, goal.metric) if values else None
    family = f" [{model}]" if len(case.scenario.families) > 1 else ""
    informational = goal.op == ""
    return Figure(
        key=f"traffic.{case.key}.{goal.metric}" + (f".{model}" if family else ""),
        name=f"{NAMES.get(goal.metric, goal.metric)}, {case.title}{family}",
        value=None if worst is None else round(worst, 4),
        unit=UNITS.get(goal.metric, ""),
        goal="informational" if informational else f"{goal.text()} (worst of {len(case.seeds)} seeds)",
        passed=None if informational and worst is not None else (False if worst is None else goal.holds(worst)),
        baseline=(f"{_spread(values)}; " if values else "") + _peers_text(result, goal.metric, model),
        settings=settings,
        detail={"per_seed": {s: o.get("by_model", {}).get(model) for s, o in result.pipeline.items()},
                "peers": {p: {s: o.get("by_model", {}).get(model) for s, o in ps.items()}
                          for p, ps in result.peers.items()}},
        note="" if worst is not None else "not measured: no run of this case gave the figure",
    )  # fmt: skip


def _sdk_peer(result: CaseResult) -> str | None:
    return next((p for p in ("sdk_loop", "sdk_model") if p in result.peers), None)


def _makespan_figures(result: CaseResult, settings: dict[str, Any]) -> list[Figure]:
    """Makespan seed by seed against the SDK loop (the same generation times in the same order) and the
    fixed poller; with push or a backlog, also the share of the SDK loop's queries."""
    case = result.case
    model = case.scenario.model
    out = []

    def ratios(peer: str, metric: str) -> list[float]:
        mine = result.pipeline
        theirs = result.peers.get(peer, {})
        values = []
        for seed in sorted(mine):
            a = mine[seed].get("by_model", {}).get(model, {}).get(metric)
            b = theirs.get(seed, {}).get("by_model", {}).get(model, {}).get(metric)
            if a is not None and b:
                values.append(a / b)
        return values

    limit = case.makespan_vs_sdk or 1.0
    sdk_peer = _sdk_peer(result) or "sdk_loop"
    sdk = ratios(sdk_peer, "makespan_s")
    fixed = ratios("fixed_poller", "makespan_s")
    worst_sdk = max(sdk) if sdk else None
    worst_fixed = max(fixed) if fixed else None
    passed = worst_sdk is not None and worst_sdk <= limit and worst_fixed is not None and worst_fixed < 1.0
    out.append(
        Figure(
            key=f"traffic.{case.key}.makespan_vs_sdk",
            name=f"makespan / the {case.scenario.concurrency}-thread SDK loop's, {case.title}",
            value=None if worst_sdk is None else round(worst_sdk, 4),
            unit="x SDK loop",
            goal=f"<= {limit:g}, and below the fixed 15 s poller's (worst seed)",
            passed=passed,
            baseline=(f"{_spread(sdk)}; vs fixed 15 s poller: worst x{worst_fixed:.4f}" if sdk and worst_fixed
                      else "a peer gave no makespan")
            + (f"; vs list poller: worst x{max(ratios('list_poller', 'makespan_s')):.4f}"
               if ratios("list_poller", "makespan_s") else ""),
            settings=settings,
            detail={"vs_sdk": sdk, "vs_fixed": fixed},
        )
    )  # fmt: skip
    if case.queries_vs_sdk is not None:
        share = ratios(sdk_peer, "queries_per_job")
        worst = max(share) if share else None
        out.append(
            Figure(
                key=f"traffic.{case.key}.queries_vs_sdk",
                name=f"queries per job / the SDK loop's, {case.title}",
                value=None if worst is None else round(worst, 4),
                unit="x SDK loop",
                goal=f"<= {case.queries_vs_sdk:g} (worst seed)",
                passed=worst is not None and worst <= case.queries_vs_sdk,
                baseline=_spread(share) if share else "the SDK loop gave no figure",
                settings=settings,
            )
        )
    return out


def heavy_vs_uniform(results: list[CaseResult]) -> list[Figure]:
    """The heavy tail's queries per job against the uniform draw's, worst against worst (goal 1.5x)."""
    by_key = {r.case.key: r for r in results}
    if "kf2v_q2" not in by_key or "kf2v_q2_heavy" not in by_key:
        return []
    uniform = _values(by_key["kf2v_q2"].pipeline, "queries_per_job", KF2V)
    heavy = _values(by_key["kf2v_q2_heavy"].pipeline, "queries_per_job", KF2V)
    ratio = max(heavy) / max(uniform) if heavy and uniform else None
    return [
        Figure(
            key="traffic.kf2v_q2_heavy.queries_vs_uniform",
            name="queries per job, heavy tail + stragglers / the 1-5 min draw's (kf2v, quota 2)",
            value=None if ratio is None else round(ratio, 4),
            unit="x uniform",
            goal="<= 1.5 (worst against worst)",
            passed=ratio is not None and ratio <= 1.5,
            baseline=f"heavy worst {max(heavy):.3g}, uniform worst {max(uniform):.3g}" if ratio else "",
        )
    ]


def aws_vs_quota2(results: list[CaseResult]) -> list[Figure]:
    """AWS requests per job at quota 100 within 1.1x of quota 2's."""
    by_key = {r.case.key: r for r in results}
    if "kf2v_q2" not in by_key or "wan27_q100" not in by_key:
        return []
    low = _values(by_key["kf2v_q2"].pipeline, "aws_per_job", KF2V)
    high = _values(by_key["wan27_q100"].pipeline, "aws_per_job", WAN27)
    ratio = max(high) / statistics.median(low) if high and low else None
    return [
        Figure(
            key="traffic.wan27_q100.aws_vs_quota2",
            name="AWS requests per job at quota 100 (5,000 jobs) / at quota 2",
            value=None if ratio is None else round(ratio, 4),
            unit="x quota 2",
            goal="<= 1.1 (worst at quota 100 against the quota-2 median)",
            passed=ratio is not None and ratio <= 1.1,
            baseline=f"quota 100 worst {max(high):.1f}, quota 2 median {statistics.median(low):.1f} requests/job"
            if ratio
            else "",
        )
    ]


def _settings(case: Case) -> dict[str, Any]:
    sc = case.scenario
    families = ", ".join(
        f"{f.model} x{f.jobs} (quota {f.concurrency}, queue {f.provider_queue}, {f.submit_per_s:g} creates/s)"
        for f in sc.families
    )
    faults = sc.faults
    return {
        "families": families,
        "seeds": len(case.seeds),
        "generation": sc.generation,
        "arrivals": sc.arrivals,
        "push": sc.push,
        "push_loss": sc.push_loss,
        "backlog": "auto: " + ", ".join(f"{f.model} {backlog_of(sc, f)}" for f in sc.families)
        if sc.backlog is None
        else sc.backlog,
        "stragglers": f"1 in {faults.straggler_every}, {faults.straggler_s:.0f} s"
        if faults.straggler_every
        else "none",
        "slow_pending": f"{faults.slow_pending_share:.0%} for {faults.slow_pending_s[0]:.0f}-"
        f"{faults.slow_pending_s[1]:.0f} s"
        if faults.slow_pending_share
        else "none",
        "peers": ", ".join(PEER_LABELS[p] for p in case.peers) or "none",
    }


# Why a traffic figure fails, and the product change that would close it, by figure key (the bench prints
# these for the figures that FAIL in the run only: a fixed one drops out of the page by itself)
WHY: dict[str, str] = {
    "traffic.kf2v_q2.queries_per_job": "each task is checked from its model's shortest usual generation time "
    "(60 s) every 12 s, and at quota 2 a task list covers only two tasks: queries ~ 1 + (share of the time a "
    "task is due) x mean generation / (quota x interval) = 1 + ~0.9 x 180 / 24. A list shared across "
    "models, or push (1.0), closes it; a 14 s interval would too, at a p95 of ~14.3 s",
    "traffic.kf2v_q2_heavy.queries_vs_uniform": "a straggler (stuck 3 h) holds one of the two slots, so the other "
    "slot's tasks come due alone and each check is a query of its own (no list to share): ~1 + (mean "
    "generation - 60 s) / 12 s = ~10 a job, against ~7.5 for the uniform draw's two tasks sharing lists, "
    "1.35x before anything else; its own back-off checks (~45 over 3 h each) and the 10 % slow PENDING phases "
    "add the rest. Push closes it; push off, a longer interval while a task is far past its usual time",
    "traffic.kf2v_q20.invariants": "Throttling.RateQuota: the create spacing (1.1 / rate) is set before the "
    "request is built and sent, so a create that reaches the provider late (the modelled tail) bunches "
    "with the next two inside one second. Spacing by the provider's arrival (a margin of the tail's "
    "size, or a sliding-second budget of rate - 1) closes it",
    "traffic.kf2v_q20.busy": "no create is refused now; the hand-over gap remains (detection on the 12 s "
    "grid + the create, and kf2v has no provider queue for a backlog to hide it): 3-4 %. Push closes it; "
    "push off, a finer grid for kf2v's slots costs queries",
    "traffic.kf2v_q20.makespan_vs_sdk": "as the busy-slot figure: the hand-over gap (kf2v has no provider "
    "queue, so no backlog can hide it)",
    "traffic.wan27_q5.queries_per_job": "push off, not reachable together with p95 <= 15 s: the list gives "
    "no video URL, so every job costs its one query, and a list every T seconds while 5 tasks end every "
    "36 s costs 36 / T a job: T >= 36 s for 2 queries a job, where p95 ~ 0.95 T + 1 s. Push (1.0) meets it",
    "traffic.wan27_q5.queries_vs_sdk": "as queries per job (0.101 against 0.1)",
    "traffic.burst.queries_per_job": "as wan2.7 at quota 5: a burst is the same 6 tasks in flight",
    "traffic.two_families.queries_per_job.wan2.2-kf2v-flash": "the 50-job draw, not the second family: "
    "kf2v alone on the same 50 jobs gives 8.16 on that seed (7.24 / 6.92 / 8.16 / 7.52 / 7.68 over the "
    "seeds), so a list shared across models would not close it. Push does; at 100 jobs, as in the "
    "single-family case, the worst seed is 7.48",
    "traffic.two_families.queries_per_job.wan2.7-i2v": "as wan2.7 at quota 5 alone",
    "traffic.wan27_q20.busy": "the hand-over gap left with the auto backlog (4 queued tasks for 20 "
    "slots): two ends inside one detection window beyond the backlog leave a slot idle until the next tick",
    "traffic.wan27_q20.makespan_vs_sdk": "as busy slots (1.0025 against 1.0)",
    "traffic.wan27_q200.p95_s": "at 240 tasks in flight a tick reads ~3 list pages and queries ~15 "
    "ended tasks before it hands over, on top of the 12 s grid; the due checks now come in one batch (was "
    "100 at a time: 16 s). Push meets it (3.5 s at quota 5)",
}


def assumptions() -> str:
    """docs/bench.md's statement of every modelled assumption, from the constants the run used."""
    from bench.virtual import AWS_LATENCY, QUERY_PER_S

    lat, aws = LATENCY, AWS_LATENCY

    def r(bounds: tuple[float, float], scale: float = 1.0, unit: str = "s") -> str:
        return f"{bounds[0] * scale:g}-{bounds[1] * scale:g} {unit}"

    return "\n".join(
        [
            "## How to reproduce",
            "",
            "`make bench` (every figure, 5 seeds a case; `--publish` writes this page, bench/results.json and "
            "docs/bench-latency.png), `make bench-quick` (one seed, small numbers: what CI runs), "
            "`python -m bench.run --only traffic` (the traffic cases alone). Same seed, same traffic figures on "
            "any machine: they run in virtual time and read no clock. A run exits non-zero on any FAIL or "
            "missing figure.",
            "",
            "## Modelled assumptions (virtual time)",
            "",
            "Every latency below is drawn uniformly in its range from a seeded stream of its own:",
            "",
            f"- create round trip, AWS region to the provider's: {r(lat.create_s)} (the task exists from its "
            "middle: the request's arrival, which the provider's rate limit counts); "
            f"{lat.create_tail_share:.0%} of creates arrive {r(lat.create_tail_s)} later still (the tail: a "
            "retransmission, a slow TLS resumption, a pause in the function)",
            f"- task query round trip {r(lat.query_s)}, task list page {r(lat.list_s)} (answered as of the middle)",
            f"- provider push: task end to the ProviderEventsFunction invoked {r(lat.push_s)}; a lossy case "
            "drops a share of the events for good",
            f"- SQS hand-over (send to the consuming Lambda running, Lambda's queue polling): {r(lat.handover_s)}",
            f"- the scheduled poller every {lat.poll_every_s:g} s (EventBridge), each tick's budget "
            f"{lat.poll_budget_s:g} s",
            f"- our AWS calls, each one request: DynamoDB {r(aws.dynamodb_s, 1000, 'ms')}, S3 "
            f"{r(aws.s3_s, 1000, 'ms')}, SNS {r(aws.sns_s, 1000, 'ms')}, SQS {r(aws.sqs_s, 1000, 'ms')}; "
            "a presigned URL is signed locally (no request). Our own Python takes no virtual time (~1 ms a "
            "use case, beside round trips of tens to hundreds)",
            "- the provider: per model, `concurrency` tasks RUNNING, a FIFO queue of `queue` PENDING beyond "
            "them (wan2.7: 500; kf2v: none, a create beyond the running tasks is `Throttling.AllocationQuota`), "
            "more creates than the published rate in a sliding second `Throttling.RateQuota`, and the "
            f"account's {QUERY_PER_S:g} queries a second (task queries and list pages together) the same. A "
            "raised quota raises the concurrency only (5 creates a second stay)",
            '- generation times: `uniform` 60-300 s (the reference\'s "usually 1-5 minutes"); `heavy` '
            "lognormal, median 140 s, sigma 0.63 (p99 ~10 min), clipped to 20 s-30 min, with 1 task in 50 "
            "stuck for 3 hours and 10 % PENDING on their slot for 30-180 s first. Task k gets the same time "
            "in every configuration and peer of a seed",
            "- the peers: the SDK's own `VideoSynthesis.call` (dashscope, unchanged: its `time` module and its "
            "`requests` transport are swapped for the virtual clock and provider) as Q threads; for the "
            "5,000-job cases the same loop modelled from the SDK's source (`BaseAsyncApi.wait`'s schedule), "
            "which a test holds to the real package; a fixed 15 s per-task poller; a list-based poller every "
            "15 s. Each keeps Q tasks in flight and retries a refused create after 1 s",
        ]
    )


def run(quick: bool = False) -> list[Figure]:
    results = run_cases(cases(quick))
    out: list[Figure] = []
    for r in results:
        out.extend(figures([r]))
    out.extend(heavy_vs_uniform(results))
    out.extend(aws_vs_quota2(results))
    _save(results)
    _plot(results)
    return out


def _save(results: list[CaseResult]) -> None:
    import json

    OUT.mkdir(parents=True, exist_ok=True)
    raw = {r.case.key: {"pipeline": r.pipeline, "peers": r.peers} for r in results}
    (OUT / "traffic.json").write_text(json.dumps(raw, indent=1, default=str))


def _plot(results: list[CaseResult]) -> None:
    """Queries per job against p95 latency, the worst seed of each case and peer (the README's plot)."""
    from bench.plot import latency_plot

    points: list[tuple[str, dict[str, Any]]] = []
    for r in results:
        if len(r.case.scenario.families) > 1:
            continue
        model = r.case.scenario.model
        for name, per_seed in [("inbetween", r.pipeline), *r.peers.items()]:
            q, p95 = _values(per_seed, "queries_per_job", model), _values(per_seed, "p95_s", model)
            if q and p95 and r.case.key in ("kf2v_q2", "wan27_q5", "wan27_q5_push", "wan27_q100"):
                label = f"{PEER_LABELS.get(name, name)}, {r.case.key}"
                points.append((label, {"latency_p95_s": max(p95), "queries_per_job": max(q)}))
    latency_plot(
        points, OUT / "bench-latency.png",
        subtitle="worst of the seeds; virtual time; peers at the same quota; lines: p95 15 s, 2 queries/job",
    )  # fmt: skip


__all__ = [
    "Case",
    "Goal",
    "assumptions",
    "cases",
    "figures",
    "invariants",
    "measure",
    "run",
    "run_cases",
    "run_named",
]
