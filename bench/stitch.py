"""The stitch (a storyboard's clips -> film.mp4) in the stitch function: CPU-seconds per second of film, the
projected Lambda time of a 14-shot film against its 900 s timeout, peak memory against its 3008 MB (and that
it does not grow with the number of shots: streamed, not every frame held), and the media layer's size.

Measured with media/measure.py's own functions: synthetic clips (``inbetween_media.synth``'s pictures,
with grain, with audio, each frame encoded as it is drawn), two per resolution cycled through the shots,
kept in bench/out/stitch-clips/ (keyed by their spec and measure.CLIP_VERSION: a second run makes none);
each stitch (with the poster and contact sheet taken in its decode pass) and each verify in a child process
of its own, its CPU-seconds (user + system, every thread) from ``os.wait4``, its peak RSS the child's own
VmHWM. CPU-seconds, never wall-clock: the machine is shared, and so the clips and the films are made two
at a time (one per core), each child's figures its own.

The films: the long one (14 x 5 s, the issue's film) at the first resolution (720P), the short one (4 x 5 s)
at every resolution. At 720P the two give the memory-bounded invariant (the long film's peak RSS against the
short one's); 1080P is measured on the short film only, its CPU per second of film projecting its 14 x 5 s
film (``project``: scaled by film length, which counts the fixed costs, interpreter and imports, 3.5 times:
an overestimate; the same scaling of 720P's short film is given beside 720P's measured long one) and its
peak memory standing for the long film's (the invariant: it does not grow with the shots).

The projected Lambda time (``project``): the CPU-seconds of the whole job, the stitch child (interpreter,
imports, probing, decoding, encoding, pictures) plus the verify child, taken as elapsed seconds on one vCPU.
x264 and the decoders use threads, so on the 1.7 vCPU Lambda gives a 3008 MB function the job can take
less (CPU / 1.7 at the very best), never more, if a Lambda vCPU is as fast as this machine's core. The
core's speed is the one thing not measured here (Lambda's arm64 Graviton core against this x86_64 one):
the goal, at most half the timeout, leaves a core twice as slow room; the figure says how much slower
a core could be before the film hit the timeout. The S3 download of the clips and the upload of the film
are not in the model (their sizes are given beside it).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from bench import cold_start
from bench.common import OUT, ROOT, Figure, at_most

if str(ROOT / "media") not in sys.path:  # media/measure.py and inbetween_media, as pytest's pythonpath
    sys.path.insert(0, str(ROOT / "media"))

LAMBDA_VCPU = 1.7  # what Lambda gives a 3008 MB function (1 vCPU per 1,769 MB)
LAMBDA_UNZIPPED_MB = 250.0  # all layers + function code, unzipped
TIME_GOAL = 0.5  # the projected time may use at most this share of the timeout
MEMORY_GOAL = 0.25  # peak RSS at most this share of the function's memory
BOUNDED_GOAL = 1.5  # the long film's peak RSS at most this many times the short film's
FUNCTION, MEDIA_LAYER = "StitchFunction", "MediaLayer"
CLIP_CACHE = OUT / "stitch-clips"  # gitignored; a file per clip, named by its key (clip_path)


@dataclass(frozen=True, slots=True)
class Plan:
    resolutions: tuple[str, ...]  # keys of measure.SIZES
    shots: int  # the long film, stitched at the first resolution
    seconds: float  # per shot
    short_shots: int  # the short film, at every resolution: the first's peak memory is compared with the
    # long film's; each other resolution's figures are its short film's (its time projected to film_shots)
    distinct: int  # synthetic clips made per resolution, cycled through the shots
    quick: bool
    build_layers: bool  # build the layers as `sam build` would (pip, arm64); otherwise this venv's packages
    workers: int = 2  # clips made and films measured at once (at most one per CPU)
    grain: float = 3.0  # measure.py's default: ~5 MB per 5 s 720p clip, ~8 Mb/s
    audio: bool = True
    blend: int = 0
    preset: str = "veryfast"  # PyAvFilmStitcher's
    crf: int = 19
    film_shots: int = 14  # the film the projection is for (the 14-shot film)
    film_seconds: float = 5.0

    def films(self) -> list[tuple[str, int]]:
        """(resolution, shots) of every film stitched and verified."""
        first, *others = self.resolutions
        return [(first, self.shots), (first, self.short_shots), *((res, self.short_shots) for res in others)]

    def reported(self, res: str) -> int:
        """The shots of the film whose figures ``res`` reports: the long film at the first resolution."""
        return self.shots if res == self.resolutions[0] else self.short_shots


FULL = Plan(("720p", "1080p"), 14, 5.0, 4, 2, quick=False, build_layers=True)
QUICK = Plan(("240p", "480p"), 3, 2.0, 1, 2, quick=True, build_layers=False)


def media_measure() -> ModuleType:
    """media/measure.py (its CLI: ``cd media && python -m measure``)."""
    return importlib.import_module("measure")


def _template() -> dict[str, Any]:
    loader = cold_start._CloudFormationLoader  # the intrinsic functions (!Ref, ...) load as None
    return dict(yaml.load((ROOT / "template.yaml").read_text(), Loader=loader))  # noqa: S506


def function_limits() -> tuple[int, int, str]:
    """(Timeout s, MemorySize MB, CodeUri) of the stitch function in template.yaml."""
    template = _template()
    props = template["Resources"][FUNCTION]["Properties"]
    return int(props["Timeout"]), int(props["MemorySize"]), str(props["CodeUri"])


# ---- measuring -----------------------------------------------------------------------------------------
def _cpu_now() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _workers(plan: Plan) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(plan.workers, cpus))


def _pixels(res: str) -> int:
    width, height = media_measure().SIZES[res]
    return int(width) * int(height)


def clip_path(plan: Plan, res: str, k: int, cache: Path = CLIP_CACHE) -> Path:
    """Where synthetic clip ``k`` of ``res`` is kept: named by a digest of its spec (measure.clip_spec),
    measure.CLIP_VERSION, synth.py's text (the pictures) and PyAV's version (the encoder)."""
    m = media_measure()
    key = {
        "version": m.CLIP_VERSION,
        "spec": m.clip_spec(res, plan.seconds, k, plan.audio, plan.grain),
        "synth": hashlib.sha256((ROOT / "media" / "inbetween_media" / "synth.py").read_bytes()).hexdigest(),
        "av": importlib.metadata.version("av"),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache / f"{res}-{plan.seconds:g}s-{k}-{digest}.mp4"


def clips(plan: Plan, cache: Path = CLIP_CACHE) -> tuple[dict[str, list[Path]], dict[str, dict[str, Any]]]:
    """Each resolution's ``plan.distinct`` clips, made (``plan.workers`` at a time, the biggest first) only
    if not in ``cache``; and per resolution what making took: {"made", "cached", "cpu_s", "peak_rss_mb"}."""
    m = media_measure()
    paths = {res: [clip_path(plan, res, k, cache) for k in range(plan.distinct)] for res in plan.resolutions}
    making: dict[str, dict[str, Any]] = {
        res: {"made": 0, "cached": sum(p.exists() for p in ps), "cpu_s": 0.0, "peak_rss_mb": 0.0}
        for res, ps in paths.items()
    }
    missing = [(res, k) for res in plan.resolutions for k, p in enumerate(paths[res]) if not p.exists()]
    missing.sort(key=lambda item: -_pixels(item[0]))
    cache.mkdir(parents=True, exist_ok=True)

    def make(item: tuple[str, int]) -> dict[str, float]:
        res, k = item
        final = paths[res][k]
        partial = final.with_name(f".{final.stem}.{os.getpid()}.{k}.part.mp4")  # renamed once whole
        try:
            made = m.make_clip(res, plan.seconds, k, plan.audio, plan.grain, partial)
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
        return made

    with ThreadPoolExecutor(_workers(plan)) as pool:
        for (res, _), made in zip(missing, pool.map(make, missing), strict=True):
            making[res]["made"] += 1
            making[res]["cpu_s"] = round(making[res]["cpu_s"] + made["cpu_s"], 2)
            making[res]["peak_rss_mb"] = max(making[res]["peak_rss_mb"], made["peak_rss_mb"])
    return paths, making


def sweep(
    plan: Plan, work: Path, cache: Path = CLIP_CACHE
) -> tuple[dict[tuple[str, int], dict[str, Any]], dict[str, dict[str, Any]]]:
    """(resolution, shots) -> measure.measure_clips() for every film of the plan (``plan.workers`` at a
    time, the biggest first); and what making each resolution's clips took (``clips``)."""
    m = media_measure()
    paths, making = clips(plan, cache)
    films = sorted(plan.films(), key=lambda film: -_pixels(film[0]) * film[1])

    def measure(film: tuple[str, int]) -> dict[str, Any]:
        res, shots = film
        return m.measure_clips(
            res, paths[res], shots, plan.seconds, plan.audio, plan.blend, plan.preset, plan.crf, work
        )

    with ThreadPoolExecutor(_workers(plan)) as pool:
        runs = dict(zip(films, pool.map(measure, films), strict=True))
    return {film: runs[film] for film in plan.films()}, making


def _tree_mb(path: Path) -> float:
    skip = {"__pycache__", ".pytest_cache", ".mypy_cache"}
    return (
        sum(
            p.stat().st_size
            for p in path.rglob("*")
            if p.is_file() and not skip & set(p.parts) and p.suffix != ".pyc"
        )
        / 1e6
    )


def _requirement_names(requirements: Path) -> list[str]:
    lines = (line.split("#")[0].strip() for line in requirements.read_text().splitlines())
    return [re.split(r"[=<>!~\[; ]", line)[0] for line in lines if line]


def _venv_dists_mb(names: list[str]) -> float:
    total = 0
    for name in names:
        dist = importlib.metadata.distribution(name)
        for file in dist.files or ():
            path = Path(str(dist.locate_file(file)))
            if path.is_file() and path.suffix != ".pyc":
                total += path.stat().st_size
    return total / 1e6


def build_media_layer(artifacts: Path) -> str:
    """The media layer as `sam build` makes it for template.yaml's MediaLayer (BuildMethod python3.12: the
    requirements' wheels for its architecture under python/, then a copy of ContentUri minus SAM's
    exclusions), as bench.cold_start builds the shared one; returns the build's description."""
    template = _template()
    layer = template["Resources"][MEDIA_LAYER]
    method = layer["Metadata"]["BuildMethod"]
    arch = layer["Metadata"].get("BuildArchitecture", "x86_64")
    if not method.startswith("python"):
        raise ValueError(f"MediaLayer's BuildMethod {method!r} is not one this bench knows how to build")
    content = ROOT / layer["Properties"]["ContentUri"]
    site = artifacts / "python"
    cold_start._install(site, ["-r", str(content / "requirements.txt")], lambda_arch=arch)
    shutil.copytree(
        content, site, ignore=shutil.ignore_patterns(*cold_start.SAM_EXCLUDED), dirs_exist_ok=True
    )
    return f"{MEDIA_LAYER}: BuildMethod {method}, {arch}"


def sizes(plan: Plan, code_uri: str) -> dict[str, Any]:
    """The stitch function's unzipped parts in MB: the media layer, the shared layer and its code."""
    m = media_measure()
    venv = m.installed_size()  # this interpreter's PyAV (measure.py's size function)
    out: dict[str, Any] = {"venv_pyav": venv, "code_mb": _tree_mb(ROOT / code_uri)}
    why = "quick: this venv's packages" if not plan.build_layers else ""
    if plan.build_layers:
        with tempfile.TemporaryDirectory(prefix="bench-stitch-layers-") as tmp:
            try:
                out["media_build"] = build_media_layer(Path(tmp) / "media")
                out["media_mb"] = _tree_mb(Path(tmp) / "media")
                method, arch = cold_start.build_layer(Path(tmp) / "shared")
                out["shared_build"] = f"{cold_start.LAYER_RESOURCE}: BuildMethod {method}, {arch}"
                out["shared_mb"] = _tree_mb(Path(tmp) / "shared")
            except (subprocess.SubprocessError, OSError, KeyError, ValueError) as exc:
                why = (
                    "the build failed, this venv's packages instead: "
                    + str(getattr(exc, "stderr", "") or exc).strip()[-160:]
                )
                out.pop("media_mb", None)
    if "media_mb" not in out or "shared_mb" not in out:  # this venv's wheels (x86_64, this Python)
        out["media_build"] = f"venv: av {venv['av_version']} + media/ ({why})"
        out["media_mb"] = float(venv["installed_mb"]["total"]) + _tree_mb(ROOT / "media")
        out["shared_build"] = f"venv: shared/requirements.txt's packages + shared/inbetween ({why})"
        names = _requirement_names(ROOT / "shared" / "requirements.txt")
        out["shared_mb"] = _venv_dists_mb(names) + _tree_mb(ROOT / "shared" / "inbetween")
    out["total_mb"] = out["media_mb"] + out["shared_mb"] + out["code_mb"]
    return out


# ---- the figures ---------------------------------------------------------------------------------------
def project(run: dict[str, Any], plan: Plan) -> tuple[float, float]:
    """(projected Lambda seconds of plan's film, CPU-seconds measured): the stitch and verify children's
    CPU-seconds as elapsed seconds on one vCPU; a film shorter than plan's (1080P's 4 x 5 s, every quick
    one) is scaled by its length in seconds of film, which scales its fixed costs too: an overestimate."""
    cpu = float(run["stitch_child_cpu_s"]) + float(run["verify_cpu_s"])
    return (cpu if _is_plans_film(run, plan) else cpu / float(run["film_s"]) * _plans_film_s(plan)), cpu


def _is_plans_film(run: dict[str, Any], plan: Plan) -> bool:
    return bool(run["shots"] == plan.film_shots and run["shot_seconds"] == plan.film_seconds)


def _plans_film_s(plan: Plan) -> float:
    frames = round(plan.film_seconds * measure_fps())
    return (plan.film_shots * frames - (plan.film_shots - 1)) / measure_fps()  # a frame less per seam


def measure_fps() -> int:
    return int(media_measure().FPS)


def _held_mb(run: dict[str, Any]) -> float:
    """What every decoded frame of the film, held at once (yuv420p), would take."""
    width, height = run["size"]
    return int(run["frames"]) * int(width) * int(height) * 1.5 / 2**20


def _label(res: str) -> str:
    return res.upper()


def _film(shots: int, seconds: float) -> str:
    return f"{shots} x {seconds:g} s"


def _making(making: dict[str, dict[str, Any]]) -> str:
    return "; ".join(
        f"{_label(res)}: {m['made']} made"
        + (f" ({m['cpu_s']:.1f} CPU-s, peak {m['peak_rss_mb']:.0f} MB)" if m["made"] else "")
        + f", {m['cached']} from bench/out"
        for res, m in making.items()
    )


def figures(
    plan: Plan,
    runs: dict[tuple[str, int], dict[str, Any]],
    making: dict[str, dict[str, Any]],
    size: dict[str, Any],
    bench_cpu_s: float,
) -> list[Figure]:
    timeout_s, memory_mb, _ = function_limits()
    quick = " (quick)" if plan.quick else ""
    first = plan.resolutions[0]
    long_film, short_film = _film(plan.shots, plan.seconds), _film(plan.short_shots, plan.seconds)
    common = {
        "films": ", ".join(f"{_film(shots, plan.seconds)} at {_label(res)}" for res, shots in plan.films()),
        "audio": plan.audio,
        "grain": plan.grain,
        "distinct_clips": plan.distinct,
        "clips": _making(making),
        "at_once": _workers(plan),
        "blend": plan.blend,
        "encoder": f"libx264 {plan.preset} CRF {plan.crf}, threads auto",
        "repeats": 1,
    }
    out: list[Figure] = []
    for res in plan.resolutions:
        shots = plan.reported(res)
        film = _film(shots, plan.seconds)
        r = runs[(res, shots)]
        beside = runs.get((first, plan.short_shots)) if res == first and shots != plan.short_shots else None
        out.append(
            Figure(
                key=f"stitch.cpu_per_film_s.{res}",
                name=f"Stitch CPU per second of film, {_label(res)} ({film}, audio){quick}",
                value=round(float(r["stitch_cpu_per_film_s"]), 3),
                unit="CPU-s / film-s",
                goal="informational (the projected time carries the goal)",
                passed=None,
                baseline=(
                    f"{r['stitch_child_cpu_s']:.1f} CPU-s for {r['film_s']:.1f} s of film "
                    f"({r['frames']} frames,"
                    f" {r['stitch_cpu_ms_per_frame']:.1f} CPU-ms each in stitch_film, pictures "
                    f"{r['pictures_encode_cpu_s']:.2f} CPU-s); {r['inputs_mb']:.0f} MB of clips -> "
                    f"{r['film_mb']:.0f} MB film"
                    + (f"; {short_film}: {beside['stitch_cpu_per_film_s']:.3f}" if beside else "")
                ),
                settings={**common, "resolution": res, "size": "x".join(map(str, r["size"]))}
                if not out
                else {"resolution": res, "size": "x".join(map(str, r["size"]))},
                detail={"run": r, "clip_making": making[res]},
            )
        )
        out.append(
            Figure(
                key=f"stitch.verify_cpu_per_film_s.{res}",
                name=f"Verify CPU per second of film, {_label(res)} ({film}){quick}",
                value=round(float(r["verify_cpu_per_film_s"]), 3),
                unit="CPU-s / film-s",
                goal="informational (the projected time carries the goal)",
                passed=None,
                baseline=f"{r['verify_cpu_s']:.1f} CPU-s: demux, decode every frame, seam signatures"
                + (f"; {short_film}: {beside['verify_cpu_per_film_s']:.3f}" if beside else ""),
                settings={"resolution": res},
            )
        )
    film_name = _film(plan.film_shots, plan.film_seconds)
    time_goal = TIME_GOAL * timeout_s
    for res in plan.resolutions:
        film = _film(plan.reported(res), plan.seconds)
        r = runs[(res, plan.reported(res))]
        projected, cpu = project(r, plan)
        scaled = not _is_plans_film(r, plan)
        check = ""
        if scaled and res != first and (first, plan.short_shots) in runs and plan.short_shots != plan.shots:
            from_short, _ = project(runs[(first, plan.short_shots)], plan)
            from_long, _ = project(runs[(first, plan.shots)], plan)
            check = (
                f"; the same scaling at {_label(first)}: {from_short:.0f} s from its {short_film} film, "
                f"{from_long:.0f} s from its {long_film} film"
            )
        out.append(
            Figure(
                key=f"stitch.lambda_time.{res}",
                name=(
                    f"Projected Lambda time, {film_name} film at {_label(res)}"
                    + (f" (scaled from {film})" if scaled else "")
                    + quick
                ),
                value=round(projected, 1),
                unit="s",
                goal=(
                    f"quick: not applied (full run: <= {time_goal:.0f} s)"
                    if plan.quick
                    else f"<= {time_goal:.0f} s ({TIME_GOAL:.0%} of the {timeout_s} s timeout)"
                ),
                passed=None if plan.quick else at_most(projected, time_goal),
                baseline=(
                    f"stitch {r['stitch_child_cpu_s']:.1f} + verify {r['verify_cpu_s']:.1f} CPU-s"
                    + (f" for {film}, x{projected / cpu:.1f} for {film_name}" if scaled else "")
                    + f" at 1 vCPU = {projected / timeout_s:.0%} of {timeout_s} s; at best "
                    f"{projected / LAMBDA_VCPU:.0f} s on "
                    f"{LAMBDA_VCPU} vCPU; fits the timeout with a core up to {timeout_s / projected:.1f}x "
                    f"slower than this one; S3 not modelled ({r['inputs_mb']:.0f} MB in, "
                    f"{r['film_mb']:.0f} MB out{f' for {film}' if scaled else ''})" + check
                ),
                settings={
                    "model": "elapsed = CPU-s (stitch + verify children) / 1 vCPU at this machine's core speed"
                    + ("; a shorter film's scaled by film length (its fixed costs too)" if scaled else ""),
                    "function": f"{FUNCTION}: {memory_mb} MB (~{LAMBDA_VCPU} vCPU), timeout {timeout_s} s",
                },
                detail={"cpu_s": round(cpu, 2), "film_s": r["film_s"], "scaled": scaled},
            )
        )
    memory_goal = MEMORY_GOAL * memory_mb
    for step in ("stitch", "verify"):
        peaks = {
            res: float(runs[(res, plan.reported(res))][f"{step}_peak_rss_mb"]) for res in plan.resolutions
        }
        worst = max(peaks, key=lambda res: peaks[res])
        films = {res: _film(plan.reported(res), plan.seconds) for res in plan.resolutions}
        others = [f"{films[res]} at {_label(res)}: {mb:.0f} MB" for res, mb in peaks.items() if res != worst]
        longer = (
            [f"no {long_film} film at {_label(worst)}: peak memory does not grow with the shots (below)"]
            if plan.reported(worst) != plan.shots
            else []
        )
        out.append(
            Figure(
                key=f"stitch.peak_rss.{step}",
                name=f"{step.capitalize()} peak memory (VmHWM), {films[worst]} at {_label(worst)}{quick}",
                value=round(peaks[worst], 1),
                unit="MB",
                goal=f"<= {memory_goal:.0f} MB ({MEMORY_GOAL:.0%} of the function's {memory_mb} MB)",
                passed=at_most(peaks[worst], memory_goal),
                baseline="; ".join(
                    [
                        *others,
                        *longer,
                        f"every frame held would be {_held_mb(runs[(worst, plan.reported(worst))]):,.0f} MB",
                    ]
                ),
                detail={"peak_rss_mb": peaks, "films": films},
            )
        )
    res = plan.resolutions[0]
    short, long = runs[(res, plan.short_shots)], runs[(res, plan.shots)]
    for step in ("stitch", "verify"):
        a, b = float(short[f"{step}_peak_rss_mb"]), float(long[f"{step}_peak_rss_mb"])
        ratio = b / a
        out.append(
            Figure(
                key=f"stitch.bounded.{step}",
                name=(
                    f"{step.capitalize()} peak memory, {plan.shots} shots / {plan.short_shots} "
                    f"shot{'s' if plan.short_shots > 1 else ''}, {_label(res)}{quick}"
                ),
                value=round(ratio, 3),
                unit="x",
                goal=f"<= {BOUNDED_GOAL} (streamed: not every frame held)",
                passed=at_most(ratio, BOUNDED_GOAL),
                baseline=(
                    f"{plan.short_shots} shot{'s' if plan.short_shots > 1 else ''}: {a:.0f} MB, "
                    f"{plan.shots} shots: {b:.0f} MB; holding every "
                    f"frame would add {_held_mb(short):,.0f} vs {_held_mb(long):,.0f} MB"
                ),
                detail={"short": short[f"{step}_peak_rss_mb"], "long": long[f"{step}_peak_rss_mb"]},
            )
        )
    bad = {
        f"{r}, {s} shots": run["verify_problems"] for (r, s), run in runs.items() if run["verify_problems"]
    }
    out.append(
        Figure(
            key="stitch.verified",
            name=f"Stitched films that pass verify_film{quick}",
            value=len(runs) - len(bad),
            unit="films",
            goal=f"all {len(runs)}",
            passed=not bad,
            note="; ".join(f"{k}: {v[:2]}" for k, v in bad.items()),
            detail={"problems": bad},
        )
    )
    venv = size["venv_pyav"]
    out.append(
        Figure(
            key="stitch.media_layer_size",
            name=f"Media layer (PyAV + inbetween_media), unzipped{quick}",
            value=round(size["media_mb"], 1),
            unit="MB",
            goal="informational (the function's total carries the goal)",
            passed=None,
            baseline=(
                f"this venv's PyAV {venv['av_version']} ({platform.machine()}, measure.installed_size): "
                f"{venv['installed_mb']['total']} MB"
            ),
            settings={"build": size["media_build"]},
            detail={"venv_pyav": venv},
        )
    )
    out.append(
        Figure(
            key="stitch.function_size",
            name=f"Stitch function: media + shared layers + code, unzipped{quick}",
            value=round(size["total_mb"], 1),
            unit="MB",
            goal=f"<= {LAMBDA_UNZIPPED_MB:.0f} MB (Lambda's limit)",
            passed=at_most(size["total_mb"], LAMBDA_UNZIPPED_MB),
            baseline=(
                f"media {size['media_mb']:.1f} + shared {size['shared_mb']:.1f} MB + code "
                f"{size['code_mb'] * 1000:.0f} KB; {LAMBDA_UNZIPPED_MB - size['total_mb']:.0f} MB to spare"
            ),
            settings={"shared": size["shared_build"], "bench_cpu_s": round(bench_cpu_s, 1)},
        )
    )
    return out


def _not_measured(why: str) -> list[Figure]:
    return [
        Figure(
            key="stitch",
            name="Stitch figures",
            value=None,
            unit="",
            goal="measured",
            passed=False,
            note="not measured: " + why,
        )
    ]


def run_plan(plan: Plan, cache: Path = CLIP_CACHE) -> list[Figure]:
    started = _cpu_now()
    _, _, code_uri = function_limits()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-stitch-") as tmp:
            runs, making = sweep(plan, Path(tmp), cache)
        size = sizes(plan, code_uri)
    except (ImportError, OSError, SystemExit) as exc:  # measure.py's child failures are SystemExit
        return _not_measured(f"{type(exc).__name__}: {exc}")
    return figures(plan, runs, making, size, _cpu_now() - started)


def run(quick: bool = False) -> list[Figure]:
    return run_plan(QUICK if quick else FULL)


__all__ = [
    "CLIP_CACHE",
    "FULL",
    "QUICK",
    "Plan",
    "clip_path",
    "clips",
    "figures",
    "project",
    "run",
    "run_plan",
    "sizes",
    "sweep",
]
