"""Provider traffic against notification latency, 50 jobs dropped at once, on one scaled provider clock;
beside, in the same run, the SDK's ``VideoSynthesis.call`` loop and a fixed 15-second per-task poller.
Also the makespan over 20 pairs at quota 2 against the SDK loop, and a plot of queries per job against
p95 latency for a few poller settings.

Each scenario runs in its own interpreter. The pipeline's scenarios run one after the other (our own code's
time counts in provider time, so they must not share the CPU with each other); the baselines, which only
wait on the provider, run beside them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from bench.common import OUT, ROOT, Figure, at_least, at_most, percentile
from bench.traffic_run import Scenario

SCALE = 20.0  # provider seconds per real second: one provider minute = three real seconds


def launch(scenarios: list[Scenario]) -> list[dict[str, Any]]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])

    def one(sc: Scenario) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "bench.traffic_run", json.dumps(asdict(sc))],
            capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=1200,
        )  # fmt: skip
        lines = [line for line in out.stdout.splitlines() if line.startswith('{"tasks"')]
        if out.returncode != 0 or not lines:
            return {"scenario": asdict(sc), "error": (out.stderr or out.stdout)[-600:]}
        return json.loads(lines[-1])

    def lane(group: list[Scenario]) -> list[tuple[int, dict[str, Any]]]:
        return [(id(sc), one(sc)) for sc in group]

    pipelines = [s for s in scenarios if s.kind == "pipeline"]
    baselines = [s for s in scenarios if s.kind != "pipeline"]
    with ThreadPoolExecutor(1 + len(baselines)) as pool:
        lanes = [pool.submit(lane, pipelines)] + [pool.submit(lane, [b]) for b in baselines]
        results = dict(pair for future in lanes for pair in future.result())
    return [results[id(s)] for s in scenarios]


def measure(result: dict[str, Any], jobs: int | None = None) -> dict[str, Any]:
    """Figures of one scenario; ``jobs`` limits it to the first N tasks created (the SDK loop's prefix)."""
    if "error" in result:
        return {"error": result["error"]}
    tasks = sorted(result["tasks"].items(), key=lambda kv: kv[1]["created"])
    if jobs is not None:
        tasks = tasks[:jobs]
    if not any(task_id in result["done"] for task_id, _ in tasks):
        return {"error": f"no job completed (of {len(tasks)} tasks created)"}
    quota = result["scenario"]["quota"] if result["scenario"]["kind"] != "sdk_loop" else 1
    learned, done = result["learned"], result["done"]
    detection, processing, total = [], [], []
    for task_id, facts in tasks:
        if task_id in learned and facts["ended"]:
            d = learned[task_id][0] - facts["ended"]
            p = done[task_id][1] - learned[task_id][1] if task_id in done else None
            detection.append(d)
            if p is not None:
                processing.append(p)
                total.append(d + p)
    completed = sum(1 for task_id, _ in tasks if task_id in done)
    first = tasks[0][1]["created"]
    last_end = max(f["ended"] for _, f in tasks if f["ended"])
    busy = sum(f["ended"] - f["created"] for _, f in tasks if f["ended"])
    last_done = max(done[t][0] for t, _ in tasks if t in done)
    queries = result["queries"] + result["list_calls"]
    if jobs is not None:  # the prefix: queries of these tasks only (the SDK polls one task at a time)
        queries = None
    throttles = sum(n for code, n in result["refusals"].items() if code.startswith("Throttling"))
    return {
        "jobs": len(tasks),
        "completed": completed,
        "queries_per_job": round(queries / completed, 2) if queries is not None and completed else None,
        "detection_p50_s": _r(percentile(detection, 50)),
        "detection_p95_s": _r(percentile(detection, 95)),
        "processing_p95_s": _r(percentile(processing, 95), 3),
        "latency_p95_s": _r(percentile(total, 95)),
        "busy_slot_fraction": round(busy / (quota * (last_end - first)), 3) if last_end > first else None,
        "makespan_s": round(last_done - first, 1),
        "throttling": throttles,
        "creates": result["creates"] if jobs is None else len(tasks),
        "real_s": round(result["wall_s"], 1),
    }


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def scenarios(quick: bool) -> dict[str, Scenario]:
    n, n_pairs = (6, 4) if quick else (50, 20)
    scale = SCALE
    s = {
        "pipeline_q2": Scenario("pipeline", n, 2, scale, label="inbetween, quota 2, push off, defaults"),
        "pipeline_q20": Scenario("pipeline", n, 20, scale, label="inbetween, quota 20, push off, defaults"),
        "pipeline_q20_push": Scenario(
            "pipeline", n, 20, scale, push=True, label="inbetween, quota 20, push on, defaults"
        ),
        "pipeline_q2_20": Scenario(
            "pipeline", n_pairs, 2, scale, label=f"inbetween, {n_pairs} pairs, quota 2"
        ),
        # the baselines' figures are per job, so 20 pairs say as much as 50 in less time
        "sdk_loop": Scenario(
            "sdk_loop", n_pairs, 2, scale, label="SDK sample in a loop (VideoSynthesis.call)"
        ),
        "fixed_15s": Scenario("fixed_poller", n_pairs, 2, scale, label="fixed 15 s per-task poller, quota 2"),
    }
    if not quick:  # the plot's other poller settings, the same 50 jobs at quota 20
        for interval in (6, 24):
            s[f"pipeline_q20_i{interval}"] = Scenario(
                "pipeline", n, 20, scale, label=f"inbetween, quota 20, poll every {interval} s",
                env={"POLL_INTERVAL_SECONDS": str(interval)},
            )  # fmt: skip
    return s


def run(quick: bool = False) -> list[Figure]:
    chosen = scenarios(quick)
    results = dict(zip(chosen, launch(list(chosen.values())), strict=True))
    m = {key: measure(result) for key, result in results.items()}
    (OUT / "provider_traffic.json").write_text(
        json.dumps({"measures": m, "raw": results}, indent=1, default=str)
    )
    sdk20 = measure(results["sdk_loop"], jobs=chosen["pipeline_q2_20"].jobs)
    scale = chosen["pipeline_q2"].scale
    base = {"scale": f"1 provider minute = {60 / scale:g} s", "generation": "uniform 60-300 provider s, seed 7",
            "jobs": chosen["pipeline_q2"].jobs, "model": "wan2.2-kf2v-flash"}  # fmt: skip

    def beside() -> str:
        parts = []
        for key in ("sdk_loop", "fixed_15s"):
            x = m[key]
            if "error" in x:
                parts.append(f"{chosen[key].label}: failed")
                continue
            parts.append(
                f"{chosen[key].label}: {x['queries_per_job']} queries/job, p95 {x['latency_p95_s']} s, "
                f"makespan {x['makespan_s']:,.0f} s"
            )
        return "; ".join(parts)

    figures = []
    for key, goal_q in (("pipeline_q2", 8.0), ("pipeline_q20", 2.0)):
        x = m[key]
        quota = chosen[key].quota
        settings = dict(base, quota=quota, push="off", **(results[key].get("settings") or {}))
        if "error" in x:
            figures.append(Figure(key=f"traffic.{key}", name=chosen[key].label, value=None, unit="", goal="",
                                  passed=None, note="failed: " + x["error"][-200:]))  # fmt: skip
            continue
        figures.append(Figure(
            key=f"traffic.{key}.queries_per_job",
            name=f"Provider queries per completed job, quota {quota}, push off",
            value=x["queries_per_job"], unit="queries/job", goal=f"<= {goal_q:g}",
            passed=at_most(x["queries_per_job"], goal_q), baseline=beside(), settings=settings, detail=x,
        ))  # fmt: skip
        figures.append(Figure(
            key=f"traffic.{key}.latency_p95",
            name=f"p95 notification latency (detection + processing), quota {quota}, push off",
            value=x["latency_p95_s"], unit="s", goal="<= 15",
            passed=at_most(x["latency_p95_s"], 15.0),
            baseline=f"detection p95 {x['detection_p95_s']} s (provider time), processing p95 "
            f"{x['processing_p95_s']} s (real time)", settings=settings,
        ))  # fmt: skip
        if quota == 2:
            figures.append(Figure(
                key=f"traffic.{key}.busy_slots", name="Busy-slot fraction, quota 2, first submit to last finish",
                value=x["busy_slot_fraction"], unit="", goal=">= 0.95",
                passed=at_least(x["busy_slot_fraction"], 0.95),
                baseline=f"fixed 15 s poller: {m['fixed_15s'].get('busy_slot_fraction')}; SDK loop (one slot "
                f"of two): {m['sdk_loop'].get('busy_slot_fraction', 0) and round(m['sdk_loop']['busy_slot_fraction'] / 2, 3)}",
                settings=settings,
            ))  # fmt: skip
        figures.append(Figure(
            key=f"traffic.{key}.throttling", name=f"Throttling errors from the provider, quota {quota}",
            value=x["throttling"], unit="errors", goal="= 0", passed=x["throttling"] == 0,
            baseline=f"SDK loop: {m['sdk_loop'].get('throttling')}, fixed 15 s poller: {m['fixed_15s'].get('throttling')}",
            settings=settings,
        ))  # fmt: skip
    x, off = m["pipeline_q20_push"], m["pipeline_q20"]
    settings = dict(base, quota=20, push="on", **(results["pipeline_q20_push"].get("settings") or {}))
    if "error" in x:
        figures.append(Figure(key="traffic.push_on", name=chosen["pipeline_q20_push"].label, value=None,
                              unit="", goal="", passed=None, note="failed: " + x["error"][-200:]))  # fmt: skip
    else:
        figures.append(Figure(
            key="traffic.push_on.queries_per_job", name="Provider queries per completed job, quota 20, push on",
            value=x["queries_per_job"], unit="queries/job", goal="<= 1.2", passed=at_most(x["queries_per_job"], 1.2),
            baseline=f"push off, same quota: {off.get('queries_per_job')} queries/job", settings=settings, detail=x,
        ))  # fmt: skip
        figures.append(Figure(
            key="traffic.push_on.latency_p95", name="p95 notification latency (detection + processing), quota 20, push on",
            value=x["latency_p95_s"], unit="s", goal="<= 5", passed=at_most(x["latency_p95_s"], 5.0),
            baseline=f"detection p95 {x['detection_p95_s']} s, processing p95 {x['processing_p95_s']} s; push off, "
            f"same quota: p95 {off.get('latency_p95_s')} s", settings=settings,
        ))  # fmt: skip
    mk = m["pipeline_q2_20"]
    if "error" not in mk and "error" not in sdk20:
        ratio = mk["makespan_s"] / sdk20["makespan_s"]
        figures.append(Figure(
            key="traffic.makespan_20", name=f"Makespan over {mk['jobs']} pairs at quota 2",
            value=round(ratio, 3), unit="x SDK loop", goal="<= 0.55", passed=at_most(ratio, 0.55),
            baseline=f"inbetween {mk['makespan_s']:,.0f} s (first create to last notification) vs SDK loop "
            f"{sdk20['makespan_s']:,.0f} s (the same seeded durations in the same order); ideal 0.5",
            settings=dict(base, jobs=mk["jobs"], quota=2), detail={"pipeline": mk, "sdk_prefix": sdk20},
        ))  # fmt: skip
    plotted = [k for k in chosen if k.startswith("pipeline_q20")] + ["pipeline_q2", "fixed_15s", "sdk_loop"]
    points = [(chosen[k].label, m[k]) for k in plotted if k in m and "error" not in m[k]]
    from bench.plot import latency_plot

    latency_plot(
        points, OUT / "bench-latency.png",
        subtitle=f"inbetween: 50 jobs; baselines: 20 pairs at quota 2; {base['scale']}; generation 1-5 min; line: quota 20 goal",
    )  # fmt: skip
    return figures


if __name__ == "__main__":
    print(json.dumps([f.to_dict() for f in run(quick=True)], indent=2, default=str))
