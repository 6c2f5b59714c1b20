"""``make bench``: run every figure, print one table, write the figures (each with goal and verdict) to JSON.

    python -m bench.run            # the full run (under 15 minutes on 2 cores)
    python -m bench.run --quick    # a smoke run in a tiny configuration
    python -m bench.run --only cold_start,poller_reads

Writes bench/out/results.json (always), and with --publish also bench/results.json, docs/bench.md and
docs/bench-latency.png (the committed copies shown in README.md).
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import platform
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime

from bench.common import OUT, ROOT, Figure

# each module has run(quick) -> list[Figure]. aws_cost counts requests (no timing in its figures), so it
# runs in its own process beside the next three; provider_traffic runs last and alone, because our own
# code's time counts in its scaled provider time.
FIGURES = ("aws_cost", "cold_start", "poller_reads", "completion", "provider_traffic", "backlog", "stitch")
BESIDE_THE_OTHERS = ("aws_cost",)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{int(value):,}"


def _verdict(passed: bool | None) -> str:
    return {True: "pass", False: "FAIL", None: "-"}[passed]


def table(figures: list[Figure]) -> str:
    rows = ["| Figure | Value | Goal | Result | Beside it (same run) |", "|---|---|---|---|---|"]
    for f in figures:
        value = f"{_fmt(f.value)} {f.unit}" if f.value is not None else f.note or "not measured"
        rows.append(f"| {f.name} | {value} | {f.goal} | {_verdict(f.passed)} | {f.baseline} |")
    return "\n".join(rows)


def settings_block(figures: list[Figure]) -> str:
    lines = []
    for f in figures:
        if f.settings:
            lines.append(f"- {f.name}: " + ", ".join(f"{k}={v}" for k, v in f.settings.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--quick", action="store_true", help="tiny configuration (smoke run)")
    parser.add_argument("--only", default="", help="comma-separated figure modules: " + ",".join(FIGURES))
    parser.add_argument("--publish", action="store_true", help="also write bench/results.json and docs/")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or list(FIGURES)
    unknown = set(chosen) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures: {sorted(unknown)}")
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    figures: list[Figure] = []
    timings: dict[str, float] = {}
    beside = {}
    spawn = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=1, mp_context=spawn)
    for name in chosen:
        if name in BESIDE_THE_OTHERS and len(chosen) > 1:
            print(f"[bench] {name} ... (in its own process, beside the others)", file=sys.stderr, flush=True)
            beside[name] = pool.submit(_timed_run, name, args.quick)
    by_name: dict[str, list[Figure]] = {}
    for name in chosen:
        if name in beside:
            continue
        if name == "provider_traffic":  # alone: wait for the ones running beside
            for other, future in beside.items():
                by_name[other], timings[other] = future.result()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        by_name[name], timings[name] = _timed_run(name, args.quick)
        print(f"[bench] {name}: {timings[name]} s", file=sys.stderr, flush=True)
    for other, future in beside.items():
        if other not in by_name:
            by_name[other], timings[other] = future.result()
    pool.shutdown()
    figures = [f for name in chosen for f in by_name[name]]
    wall = time.perf_counter() - started
    command = "make bench" + (" (--quick)" if args.quick else "")
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "command": command,
        "quick": args.quick,
        "wall_s": round(wall, 1),
        "wall_s_by_module": timings,
        "machine": {"cpus": _cpus(), "python": platform.python_version(), "platform": platform.platform()},
        "figures": [f.to_dict() for f in figures],
    }
    (OUT / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    text = table(figures)
    print(text)
    print()
    print("Settings:\n" + settings_block(figures))
    print(f"\n{sum(f.passed is True for f in figures)} pass, {sum(f.passed is False for f in figures)} fail, "
          f"{sum(f.passed is None for f in figures)} informational; {wall:.0f} s")  # fmt: skip
    markdown = (
        f"Measured {result['date']} with `{command}` on {result['machine']['cpus']} CPUs "
        f"(Python {result['machine']['python']}), {wall / 60:.1f} minutes.\n\n{text}\n\nSettings:\n\n"
        f"{settings_block(figures)}\n"
    )
    (OUT / "bench.md").write_text(markdown)
    if args.publish:
        shutil.copy(OUT / "results.json", ROOT / "bench" / "results.json")
        (ROOT / "docs").mkdir(exist_ok=True)
        (ROOT / "docs" / "bench.md").write_text(markdown)
        plot = OUT / "bench-latency.png"
        if plot.exists():
            shutil.copy(plot, ROOT / "docs" / "bench-latency.png")
    return 0


def _timed_run(name: str, quick: bool) -> tuple[list[Figure], float]:
    t0 = time.perf_counter()
    module = importlib.import_module(f"bench.{name}")
    figures = module.run(quick=quick)
    return figures, round(time.perf_counter() - t0, 1)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
