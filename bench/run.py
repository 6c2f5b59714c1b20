"""``make bench``: run every figure, print one table, write the figures (each with goal and verdict) to JSON.

    python -m bench.run            # the full run (under 15 minutes on 2 cores)
    python -m bench.run --quick    # `make bench-quick`: one seed, small numbers (CI runs it)
    python -m bench.run --only cold_start,poller_reads

Writes bench/out/results.json (always), and with --publish also bench/results.json, docs/bench.md and
docs/bench-latency.png (the committed copies shown in README.md).

Exits 1 when any figure FAILs or is missing (no value, a module that gave none, a module that crashed):
a bench that cannot fail measures nothing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import platform
import resource
import shutil
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import OUT, ROOT, Figure

# each module has run(quick) -> list[Figure]. aws_cost counts requests (no timing in its figures), so it
# runs in its own process beside the others, but only once the modules that time something on the wall
# clock have run alone: beside aws_cost on 2 cores, completion's throughput read 0.31 where it reads 0.51
# alone (it and its moto server need both cores), and cold_start's ratios sit within 2 % of their goal.
# stitch counts CPU seconds of its own process and its peak memory, which another process on the other
# core (2 cores, no SMT here) leaves alone, and its goals have a margin of 2.6x or more; traffic and backlog
# run in virtual time: their figures do not depend on the machine's load, only their wall time does.
FIGURES = ("aws_cost", "cold_start", "poller_reads", "completion", "traffic", "backlog", "stitch")
BESIDE_THE_OTHERS = ("aws_cost",)
TIMED = ("cold_start", "completion")


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{int(value):,}"


def missing(f: Figure) -> bool:
    """A figure with no value is missing, whatever its verdict (an informational one too): the bench did
    not measure what it says it shows."""
    return f.value is None


def failed(f: Figure, *, quick: bool = False) -> bool:
    """What sets the exit code: any FAIL or missing figure; in a quick run, a broken invariant, a crash
    or a missing figure (its goal verdicts are shown, on small numbers, but do not count)."""
    if missing(f):
        return True
    return f.passed is False and (f.invariant or not quick)


def _verdict(f: Figure) -> str:
    if f.passed is False:
        return "FAIL"
    if missing(f):
        return "MISSING"
    return {True: "pass", None: "-"}[f.passed]


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def table(figures: list[Figure]) -> str:
    rows = ["| Figure | Value | Goal | Result | Beside it (same run) |", "|---|---|---|---|---|"]
    for f in figures:
        value = f"{_fmt(f.value)} {f.unit}" if f.value is not None else f.note or "not measured"
        if f.value is not None and f.note and f.passed is False:
            value += f" ({f.note})"
        rows.append(f"| {f.name} | {_cell(value)} | {f.goal} | {_verdict(f)} | {_cell(f.baseline)} |")
    return "\n".join(rows)


def scrub(text: str) -> str:
    """This checkout's and interpreter's paths out of what is published (a crash's command line)."""
    return text.replace(sys.executable, "python").replace(str(ROOT) + "/", "").replace(str(ROOT), ".")


def crashed(name: str, error: BaseException | str) -> Figure:
    """The FAIL figure of a module that raised instead of answering."""
    text = error if isinstance(error, str) else "".join(traceback.format_exception(error)[-3:])
    return Figure(
        key=f"{name}.crashed", name=f"{name}: the module ran to its end", value=None, unit="",
        goal="no exception", passed=False, note="crashed: " + scrub(text.strip().splitlines()[-1])[:300],
        invariant=True,
    )  # fmt: skip


def settings_block(figures: list[Figure]) -> str:
    """Each distinct setting once, with the figures it applies to (a case's figures share theirs)."""
    groups: dict[str, list[Figure]] = {}
    for f in figures:
        if f.settings:
            groups.setdefault(", ".join(f"{k}={v}" for k, v in f.settings.items()), []).append(f)
    lines = []
    for text, members in groups.items():
        more = f" (and {len(members) - 1} more)" if len(members) > 1 else ""
        lines.append(f"- {members[0].name}{more}: {text}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--quick", action="store_true", help="tiny configuration (smoke run)")
    parser.add_argument("--only", default="", help="comma-separated figure modules: " + ",".join(FIGURES))
    parser.add_argument("--publish", action="store_true", help="also write bench/results.json and docs/")
    parser.add_argument(
        "--render",
        default="",
        help="rewrite docs/bench.md from a results.json (no run), e.g. bench/results.json",
    )
    args = parser.parse_args(argv)
    if args.render:
        return render(Path(args.render))
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or list(FIGURES)
    unknown = set(chosen) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures: {sorted(unknown)}")
    kept: dict[str, Any] = {}
    if args.only and args.publish and not args.quick:
        # a partial re-run: the other modules keep their figures from the last full run (named below)
        kept = _previous(set(chosen))
        if not kept and set(chosen) != set(FIGURES):
            parser.error(
                "a partial run is published beside the last full run's figures, and there is none "
                "(bench/out/results.json or bench/results.json from `make bench`): run `make bench` first"
            )
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    figures: list[Figure] = []
    timings: dict[str, float] = {}
    beside = {}
    spawn = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=1, mp_context=spawn)
    by_name: dict[str, list[Figure]] = {}

    def run_here(names: list[str]) -> None:
        for name in names:
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            by_name[name], timings[name] = _timed_run(name, args.quick)
            print(f"[bench] {name}: {timings[name]} s", file=sys.stderr, flush=True)

    beside_names = [name for name in chosen if name in BESIDE_THE_OTHERS and len(chosen) > 1]
    run_here([name for name in chosen if name in TIMED and name not in beside_names])
    for other in beside_names:
        print(f"[bench] {other} ... (in its own process, beside the others)", file=sys.stderr, flush=True)
        beside[other] = pool.submit(_timed_run, other, args.quick)
    run_here([name for name in chosen if name not in TIMED and name not in beside_names])
    for other, future in beside.items():
        try:
            by_name[other], timings[other] = future.result()
        except Exception as exc:  # noqa: BLE001 - the process itself died: a FAIL figure, not a traceback
            by_name[other], timings[other] = [crashed(other, exc)], 0.0
    pool.shutdown()
    for name in chosen:
        if not by_name.get(name):
            by_name[name] = [crashed(name, "the module returned no figure")]
    wall = time.perf_counter() - started
    cpu = _cpu_s()
    command = "make bench-quick" if args.quick else "make bench"
    if args.only and args.publish and not args.quick:
        for name, figs in kept.get("by_module", {}).items():
            by_name[name] = figs
        command = f"python -m bench.run --only {','.join(chosen)} --publish"
    order = [name for name in FIGURES if name in by_name]
    figures = [f for name in order for f in by_name[name]]
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "command": command,
        "quick": args.quick,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "wall_s_by_module": timings,
        "machine": {"cpus": _cpus(), "python": platform.python_version(), "platform": platform.platform()},
        "figures": [dict(f.to_dict(), module=name) for name in order for f in by_name[name]],
        "kept_from": {k: v for k, v in kept.items() if k != "by_module"},
    }
    (OUT / "results.json").write_text(scrub(json.dumps(result, indent=2)) + "\n")
    text = table(figures)
    print(text)
    print()
    print("Settings:\n" + settings_block(figures))
    failures = [f for f in figures if failed(f, quick=args.quick)]
    print(f"\n{sum(f.passed is True for f in figures)} pass, {len(failures)} fail or missing, "
          f"{sum(f.passed is None and not missing(f) for f in figures)} informational; {wall:.0f} s wall, "
          f"{cpu:.0f} s CPU")  # fmt: skip
    markdown = _markdown(result, text, figures, wall, cpu, failures)
    (OUT / "bench.md").write_text(scrub(markdown))
    if args.publish:
        shutil.copy(OUT / "results.json", ROOT / "bench" / "results.json")
        (ROOT / "docs").mkdir(exist_ok=True)
        (ROOT / "docs" / "bench.md").write_text(scrub(markdown))
        plot = OUT / "bench-latency.png"
        if plot.exists():
            shutil.copy(plot, ROOT / "docs" / "bench-latency.png")
    for f in failures:
        print(f"[bench] {_verdict(f)}: {f.name}: {f.note or f.value}", file=sys.stderr)
    return 1 if failures else 0


def _markdown(
    result: dict, text: str, figures: list[Figure], wall: float, cpu: float, failures: list[Figure]
) -> str:
    from bench.traffic import assumptions

    verdict = f"{len(failures)} figures FAIL or are missing" if failures else "every figure passes"
    kept = result.get("kept_from") or {}
    if kept:
        verdict += (
            f". Re-run here: {', '.join(sorted(set(FIGURES) - set(kept['modules'])))}; the figures of "
            f"{', '.join(kept['modules'])} are the full run's of {kept['date']} ({kept['wall_s'] / 60:.1f} "
            f"minutes wall, {kept['cpu_s'] / 60:.1f} CPU-minutes for everything)"
        )
    return (
        f"# The bench run\n\nMeasured {result['date']} with `{result['command']}` on "
        f"{result['machine']['cpus']} CPUs (Python {result['machine']['python']}): {wall / 60:.1f} minutes "
        f"wall, {cpu / 60:.1f} CPU-minutes; {verdict}. A value is the worst of the seeds (the goal holds on it); "
        f"the median, the range and the peers stand beside it.\n\n{assumptions()}\n\n## The figures\n\n"
        f"{text}\n\n{_why(failures)}## Settings\n\n{settings_block(figures)}\n"
    )


def render(path: Path) -> int:
    """docs/bench.md from a published results file, as the run that wrote it would have (its exit code)."""
    result = json.loads(scrub(path.read_text()))
    fields = set(Figure.__dataclass_fields__)
    figures = [Figure(**{k: v for k, v in item.items() if k in fields}) for item in result["figures"]]
    failures = [f for f in figures if failed(f, quick=bool(result.get("quick")))]
    markdown = _markdown(
        result, table(figures), figures, result["wall_s"], result.get("cpu_s") or 0.0, failures
    )
    (ROOT / "docs" / "bench.md").write_text(scrub(markdown))
    return 1 if failures else 0


def _why(failures: list[Figure]) -> str:
    """Each FAIL of this run with what is known of its cause and the change that would close it."""
    from bench.traffic import WHY

    why = {**WHY, **WHY_OTHERS}
    lines = [
        f"- {f.name}: {_fmt(f.value)} {f.unit} ({f.goal}): {why[f.key]}" for f in failures if f.key in why
    ]
    others = [f"- {f.name}: {f.note or _fmt(f.value)}" for f in failures if f.key not in why]
    if not lines and not others:
        return ""
    return "## The FAILs, and what would close them\n\n" + "\n".join(lines + others) + "\n\n"


_MEDIA_IMPORT_WHY = (
    "the two functions with the media layer sit on the goal: 1.90-1.91 on 2026-12-03, 2.00-2.08 in three "
    "runs on 2026-12-04, whose only change to their imports is boto3.s3.transfer (~2 ms by -X importtime, "
    "which boto3 loads for its first S3 client anyway). The media layer's import (PyAV, Pillow) is ~65 ms, "
    "~0.17x; importing it at the first picture would pass the figure but only move the time, as every "
    "completion makes pictures and Lambda bills INIT as it bills the handler. What would close it: a "
    "lighter tracer than the X-Ray SDK Powertools imports (-X importtime: ~120 ms of its own, ~0.3x)"
)

# why a figure outside the traffic module fails, by key (printed for the figures that FAIL in the run only)
WHY_OTHERS: dict[str, str] = {
    "cost.backend_check": "the lean backend answered some call unlike moto, so the run took another path "
    "(once: an update clause it did not know, so every completion failed once and was retried; once: the "
    "run's start read from the wall clock, so each run met the poller's ticks at another phase); "
    "tests/integration/test_bench_smoke.py holds every store method's answers to moto's",
    "completion.throughput_ratio": "store_video streams through boto3's upload_fileobj (s3transfer: 6 "
    "parts of 8 MiB in flight, the same threads upload_file uses); it measured 0.92-1.01x on 2026-12-04, where "
    "its own multipart loop (5 bytes parts in flight) gave 0.45-0.52. A wall-clock ratio on a shared "
    "machine: a FAIL well below that is the machine's load during the run; re-run the module alone",
    "cold_start.import.completion": _MEDIA_IMPORT_WHY,
    "cold_start.import.stitch": _MEDIA_IMPORT_WHY,
}

# figure keys whose first part is not their module's name
KEY_PREFIXES = {"cost": "aws_cost", "poller": "poller_reads"}


def _previous(rerun: set[str]) -> dict[str, Any]:
    """The last full run's figures of the modules not re-run, by module: this machine's last run
    (bench/out/results.json) if it was a full one, else the published one (bench/results.json); {} if
    neither is a whole, full run (a quick run, or a partial one, is never kept from)."""
    last = next((run for run in map(_read_results, (OUT, ROOT / "bench")) if _is_full_run(run)), None)
    if last is None:
        return {}
    fields = set(Figure.__dataclass_fields__)
    by_module: dict[str, list[Figure]] = {}
    for item in last["figures"]:
        prefix = item["key"].split(".")[0]
        module = item.get("module") or KEY_PREFIXES.get(prefix, prefix)
        if module not in rerun:
            by_module.setdefault(module, []).append(Figure(**{k: v for k, v in item.items() if k in fields}))
    return {
        "date": last["date"],
        "modules": sorted(by_module),
        "wall_s": last["wall_s"],
        "cpu_s": last.get("cpu_s") or 0.0,
        "by_module": by_module,
    }


def _read_results(folder: Path) -> dict[str, Any]:
    path = folder / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _is_full_run(result: dict[str, Any]) -> bool:
    return result.get("command") == "make bench" and not result.get("quick") and not result.get("kept_from")


def _timed_run(name: str, quick: bool) -> tuple[list[Figure], float]:
    t0 = time.perf_counter()
    try:
        module = importlib.import_module(f"bench.{name}")
        figures = list(module.run(quick=quick))
    except Exception as exc:  # noqa: BLE001 - a crashed module is a FAIL figure; the others still run
        figures = [crashed(name, exc)]
    return figures, round(time.perf_counter() - t0, 1)


def _cpu_s() -> float:
    """CPU seconds of this process and every child it waited for (the traffic workers, aws_cost's)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
