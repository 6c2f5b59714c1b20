"""Issue #14: is a small PROVIDER_BACKLOG worth it for wan2.7-i2v? Measured in virtual time (bench.virtual).

wan2.7-i2v's provider holds tasks PENDING beyond the account's 5 running ones and starts one the moment a
running task ends. With PROVIDER_BACKLOG=0 admission keeps exactly 5 tasks at the provider, so each slot
sits idle between a task's end and the next create: detection (the poller's 12 s grid, or a push event),
then the create. A backlog of b keeps 5+b there: the next task is already queued when a slot frees, at the
price of tasks committed (paid for, withdrawable only by a provider cancel) before a slot is free.

Each scenario runs the product's use cases (admission, the poller's tick, push, completion) against a
provider model with that queue, for PROVIDER_BACKLOG 0-3, push off and on, several seeds, in three
workloads: N jobs dropped at once (generation 60-300 s uniform, or heavy-tailed), and a Poisson stream of
drops at load 0.9. The seed fixes the generation times (the k-th task created gets the same one whatever
the backlog), so configurations are compared pairwise, seed by seed. Same seed, same figures.

The decision the goals express: backlog 1, push on or off. It takes nearly all of the hand-over gap out
(and so most of what any backlog can gain) with at most one task committed early at any moment; a second
or third queued task only catches the rare second end within one detection window, for twice or three
times the committed time.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from typing import Any

from bench.common import Figure, percentile
from bench.virtual import LATENCY, Run, Scenario, run_scenario

BACKLOGS = (0, 1, 2, 3)
PUSH = (False, True)
RECOMMENDED = 1  # the decision: backlog 1 takes the hand-over gap out; more only commits tasks earlier


@dataclass(frozen=True, slots=True)
class Workload:
    key: str
    title: str
    generation: str  # a key of bench.virtual.GENERATIONS
    arrivals: str  # "burst" or "poisson"
    headline: str  # the figure compared: "makespan_s" (a burst) or "p95_s" (a stream: its end is the drops')
    seed_factor: int = 1  # more seeds than the plan's: a stream's p95 (10th worst of 200) is noisier


UNIFORM = Workload("uniform", "burst, 60-300 s", "uniform", "burst", "makespan_s")
HEAVY = Workload("heavy", "burst, heavy tail", "heavy", "burst", "makespan_s")
STREAM = Workload("stream", "Poisson drops every 40 s (load 0.9), 60-300 s", "uniform", "poisson", "p95_s", 2)


@dataclass(frozen=True, slots=True)
class Plan:
    jobs: int
    seeds: tuple[int, ...]
    workloads: tuple[Workload, ...]

    def seeds_of(self, wl: Workload) -> tuple[int, ...]:
        return tuple(range(1, len(self.seeds) * wl.seed_factor + 1)) if wl.seed_factor > 1 else self.seeds


QUICK = Plan(jobs=30, seeds=(1, 2), workloads=(UNIFORM,))
FULL = Plan(jobs=200, seeds=tuple(range(1, 7)), workloads=(UNIFORM, HEAVY, STREAM))


# ---- one scenario's figures ----------------------------------------------------------------------------
def measure(run: Run) -> dict[str, Any]:
    """The figures of one scenario (seconds, fractions, counts) and its broken invariants."""
    sc = run.scenario
    broken = invariants(run)
    out: dict[str, Any] = {"label": sc.label, "broken": broken}
    arrivals = run.arrivals
    firsts = {job_id: times[0] for job_id, times in run.notified.items() if times}
    if not arrivals or not firsts or not run.tasks:
        return out
    t0 = min(arrivals.values())
    latencies = [firsts[j] - arrivals[j] for j in arrivals if j in firsts]
    tasks = run.tasks
    first_start = min(t.start for t in tasks)
    last_end = max(t.end for t in tasks)
    running = sum(t.end - t.start for t in tasks)
    job_of = {task_id: job_id for job_id, task_id in run.task_of.items() if task_id}
    # a slot's hand-over, when a job was waiting as it came free: from the end of the task that held it to
    # the start of the next (0 when that one was already queued at the provider)
    gaps = [
        t.start - t.slot_free_at
        for t in tasks
        if t.slot_free_at is not None and arrivals.get(job_of.get(t.task_id, ""), math.inf) <= t.slot_free_at
    ]
    pending = [t.start - t.created for t in tasks]
    out.update(
        makespan_s=max(firsts.values()) - t0,
        p50_s=percentile(latencies, 50),
        p95_s=percentile(latencies, 95),
        busy=running / (sc.concurrency * (last_end - first_start)),
        gap_mean_s=statistics.fmean(gaps) if gaps else 0.0,
        gap_total_s=sum(gaps),
        handovers=len(gaps),
        pending_mean_s=statistics.fmean(pending),
        pending_max_s=max(pending),
        pending_total_s=sum(pending),
        pending_tasks=sum(1 for p in pending if p > 0),
        max_pending=_most_at_once((t.created, t.start) for t in tasks),
        max_in_flight=_most_at_once((t.created, t.end) for t in tasks),
        queries=run.queries,
        list_calls=run.list_calls,
        late_max_s=run.late_max_s,
    )
    return out


def _most_at_once(intervals: Iterable[tuple[float, float]]) -> int:
    """The most of the half-open intervals [a, b) that overlap at one instant."""
    edges = sorted(e for a, b in intervals if b > a for e in ((a, 1), (b, -1)))
    most = now = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):  # an end before a start at the same instant
        now += step
        most = max(most, now)
    return most


def invariants(run: Run) -> list[str]:
    """What must hold in every scenario; each entry names one that did not."""
    sc = run.scenario
    broken = []
    for at, name, trace in run.errors[:3]:
        broken.append(f"crash in {name} at +{at - min(run.arrivals.values(), default=at):.1f} s: "
                      f"{trace.strip().splitlines()[-1]}")  # fmt: skip
    if not run.finished:
        broken.append(f"not every job was notified within {sc.horizon_s:.0f} s")
    if len(run.arrivals) != sc.jobs:
        broken.append(f"{len(run.arrivals)} of {sc.jobs} jobs dropped")
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
    throttled = sum(run.throttled.values())
    if throttled:
        broken.append(f"{throttled} Throttling answers {dict(sorted(run.throttled.items()))}")
    return broken


def run_one(sc: Scenario, runner: Callable[[Scenario], Run] = run_scenario) -> dict[str, Any]:
    """A scenario's figures; a crash of the scenario itself is a broken invariant, not an exception."""
    try:
        return measure(runner(sc))
    except Exception as exc:  # noqa: BLE001 - one broken scenario must not stop the others' figures
        return {"label": sc.label, "broken": [f"the scenario crashed: {type(exc).__name__}: {exc}"]}


# ---- the figures ---------------------------------------------------------------------------------------
Config = tuple[str, bool, int]  # (workload key, push, backlog)
Results = dict[Config, dict[int, dict[str, Any]]]  # config -> seed -> measure()
NAMES = {"makespan_s": "makespan", "p95_s": "p95 drop-to-notification"}
# backlog 1's goals: the headline falls on every seed, by at least this much at the median
B1_MEDIAN_AT_MOST = 0.99
# a backlog beyond 1 is worth it only if it buys this much more than backlog 1 (median over seeds): it
# doubles or triples the time tasks sit committed at the provider
WORTH_BEYOND_1 = 0.01


def _s(value: float) -> str:
    return f"{value:,.0f} s" if value >= 100 else f"{value:.1f} s"


def _med(per_seed: dict[int, dict[str, Any]], key: str) -> float:
    return float(statistics.median(float(m[key]) for m in per_seed.values()))


def _ratios(results: dict[int, dict[str, Any]], base: dict[int, dict[str, Any]], key: str) -> list[float]:
    """Seed by seed (the same generation times on both sides)."""
    return [results[seed][key] / base[seed][key] for seed in sorted(results) if base[seed][key]]


def _complete(per_seed: dict[int, dict[str, Any]]) -> bool:
    return bool(per_seed) and all("makespan_s" in m for m in per_seed.values())


def figures(results: Results, plan: Plan) -> list[Figure]:
    out: list[Figure] = []
    common = {"model": "wan2.7-i2v", "concurrency": 5, "jobs": plan.jobs, "poll_interval_s": 12}
    lat = LATENCY
    latencies = (
        f"create {lat.create_s[0]}-{lat.create_s[1]} s, query {lat.query_s[0]}-{lat.query_s[1]} s, list "
        f"{lat.list_s[0]}-{lat.list_s[1]} s, push event {lat.push_s[0]}-{lat.push_s[1]} s, SQS hand-over "
        f"{lat.handover_s[0]}-{lat.handover_s[1]} s, poller every {lat.poll_every_s:.0f} s (budget "
        f"{lat.poll_budget_s:.0f} s); our code 0 s"
    )
    for wl in plan.workloads:
        for push in PUSH:
            mode = "push on" if push else "push off"
            tag = f"backlog.{wl.key}.{'push' if push else 'poll'}"
            base = results.get((wl.key, push, 0), {})
            if not _complete(base):
                continue  # the invariant figures say why
            settings = {**common, "seeds": len(plan.seeds_of(wl)), "workload": wl.title, "push": push}
            out.append(
                Figure(
                    key=f"{tag}.gap",
                    name=f"hand-over gap, backlog 0, {mode}, {wl.title}",
                    value=round(_med(base, "gap_mean_s"), 2),
                    unit="s",
                    goal="informational",
                    passed=None,
                    baseline=(
                        f"makespan {_s(_med(base, 'makespan_s'))}, p95 {_s(_med(base, 'p95_s'))}, busy "
                        f"slots {_med(base, 'busy'):.3f}, {_med(base, 'queries'):.0f} queries + "
                        f"{_med(base, 'list_calls'):.0f} lists (medians of {len(base)} seeds)"
                    ),
                    settings={**settings, "backlog": 0, **({} if out else {"latencies": latencies})},
                    detail={"per_seed": base},
                )
            )
            b1 = results.get((wl.key, push, 1), {})
            for backlog in BACKLOGS[1:]:
                per_seed = results.get((wl.key, push, backlog), {})
                if not _complete(per_seed):
                    continue
                ratio = _ratios(per_seed, base, wl.headline)
                median, worst = statistics.median(ratio), max(ratio)
                most_pending = max(m["max_pending"] for m in per_seed.values())
                if backlog == RECOMMENDED:
                    goal = f"median <= {B1_MEDIAN_AT_MOST}, every seed < 1, <= 1 task PENDING at once"
                    passed = median <= B1_MEDIAN_AT_MOST and worst < 1.0 and most_pending <= 1
                    beyond = ""
                else:
                    over_b1 = statistics.median(_ratios(per_seed, b1, wl.headline)) if _complete(b1) else None
                    goal = f"not worth it: within {WORTH_BEYOND_1:.1%} of backlog 1 (median)"
                    passed = None if over_b1 is None else over_b1 >= 1.0 - WORTH_BEYOND_1
                    beyond = f"; vs backlog 1 x{over_b1:.4f}" if over_b1 is not None else ""
                other = "p95_s" if wl.headline == "makespan_s" else "makespan_s"
                out.append(
                    Figure(
                        key=f"{tag}.b{backlog}",
                        name=f"{NAMES[wl.headline]}, backlog {backlog} / backlog 0, {mode}, {wl.title}",
                        value=round(median, 4),
                        unit="x",
                        goal=goal,
                        passed=passed,
                        baseline=(
                            f"worst seed x{worst:.4f}{beyond}; {NAMES[other]} "
                            f"x{statistics.median(_ratios(per_seed, base, other)):.4f}; gap "
                            f"{_med(per_seed, 'gap_mean_s'):.2f} s; busy {_med(per_seed, 'busy'):.3f}; "
                            f"PENDING mean {_s(_med(per_seed, 'pending_mean_s'))}, max "
                            f"{_s(max(m['pending_max_s'] for m in per_seed.values()))}, "
                            f"<= {most_pending} at once"
                        ),
                        settings={**settings, "backlog": backlog},
                        detail={"ratio_per_seed": ratio, "per_seed": per_seed},
                    )
                )
    out.extend(invariant_figures(results))
    return out


def invariant_figures(results: Results) -> list[Figure]:
    """One FAIL figure per scenario that broke an invariant (or crashed); one passing figure if none did."""
    out: list[Figure] = []
    total = 0
    for (workload, push, backlog), per_seed in results.items():
        for seed, m in per_seed.items():
            total += 1
            if m.get("broken"):
                out.append(
                    Figure(
                        key=f"backlog.invariants.{workload}.{'push' if push else 'poll'}.b{backlog}.s{seed}",
                        name=f"invariants, {m['label']}",
                        value=None,
                        unit="",
                        goal="every job STORED, 1 task and 1 notification per job, 0 Throttling",
                        passed=False,
                        note="; ".join(m["broken"]),
                        detail=m,
                        invariant=True,
                    )
                )
    if not out:
        out.append(
            Figure(
                key="backlog.invariants",
                name="invariants (every job STORED, 1 task and 1 notification each, 0 Throttling)",
                value=total,
                unit="scenarios",
                goal=f"held in all {total}",
                passed=True,
                invariant=True,
            )
        )
    return out


def sweep(plan: Plan, runner: Callable[[Scenario], Run] = run_scenario, workers: int = 1) -> Results:
    """Every (workload, push, backlog, seed); with ``workers`` > 1 in that many processes (virtual time:
    the figures are the same however the scenarios share the machine)."""
    plan_of: list[tuple[Config, int, Scenario]] = []
    for wl in plan.workloads:
        for push in PUSH:
            for backlog in BACKLOGS:
                sc = Scenario(
                    jobs=plan.jobs, generation=wl.generation, arrivals=wl.arrivals, push=push, backlog=backlog
                )
                plan_of.extend(
                    ((wl.key, push, backlog), seed, replace(sc, seed=seed)) for seed in plan.seeds_of(wl)
                )
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            outs = list(pool.map(run_one, [sc for _, _, sc in plan_of], [runner] * len(plan_of)))
    else:
        outs = [run_one(sc, runner) for _, _, sc in plan_of]
    results: Results = {}
    for (config, seed, _), out in zip(plan_of, outs, strict=True):
        results.setdefault(config, {})[seed] = out
    return results


def run_plan(plan: Plan, runner: Callable[[Scenario], Run] = run_scenario, workers: int = 1) -> list[Figure]:
    return figures(sweep(plan, runner, workers), plan)


def run(quick: bool = False) -> list[Figure]:
    return run_plan(QUICK if quick else FULL, workers=2)


__all__ = [
    "FULL",
    "QUICK",
    "Plan",
    "Workload",
    "figures",
    "invariant_figures",
    "invariants",
    "measure",
    "run",
    "run_one",
    "run_plan",
    "sweep",
]
