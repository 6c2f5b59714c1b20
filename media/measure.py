"""Measure the stitch: CPU per second of film, peak RSS, and PyAV's installed size; prints JSON.

    python media/measure.py                       # 14 shots x 5 s at 720P and 1080P, with audio
    cd media && python -m measure --res 720p --shots 4 --seconds 2    # a quick look

Synthetic clips (:mod:`inbetween_media.synth`, with grain) are made once per resolution (``--distinct`` of
them, cycled through the shots). Each stitch and each verify runs in a child process of its own; its CPU
(user + system) comes from ``os.wait4``; its peak RSS is the child's own ``VmHWM`` (/proc/self/status), because
``ru_maxrss`` (RUSAGE_CHILDREN or wait4) is floored on Linux by the parent's RSS at fork time; both are printed.
Figures are CPU-seconds, never wall-clock.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SIZES = {"480p": (832, 480), "720p": (1280, 720), "1080p": (1920, 1080)}

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {here!r})

def peak_rss_kb():
    # VmHWM: this process image's own high-water mark. ru_maxrss is not: after fork+exec Linux keeps the
    # parent's RSS at fork time as a floor (a 300 MB parent makes every child report >= 300 MB)
    try:
        with open("/proc/self/status") as status:
            return int(next(line for line in status if line.startswith("VmHWM")).split()[1])
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from inbetween_media import FilmPictures, plan_film, stitch_film, verify_film
args = json.loads(sys.argv[1])
if args["mode"] == "stitch":
    plan = plan_film(args["clips"], seam_blend_frames=args["blend"])
    pictures = FilmPictures(plan.layout, plan.width, plan.height)
    report = stitch_film(args["clips"], args["out"], seam_blend_frames=args["blend"], on_frame=pictures,
                         preset=args["preset"], crf=args["crf"], plan=plan)
    started = time.process_time()
    sheet, poster = pictures.sheet_png(), pictures.poster_jpeg()
    print(json.dumps({{"frames": report.total_frames, "duration_s": report.duration_s, "cpu_s": report.cpu_s,
                      "pictures_encode_cpu_s": time.process_time() - started, "bytes": report.bytes,
                      "audio_duration_s": report.audio_duration_s, "sheet_bytes": len(sheet),
                      "clip_frames": report.clip_frames, "blend": report.seam_blend_frames,
                      "width": report.width, "height": report.height, "peak_rss_kb": peak_rss_kb()}}))
else:
    from inbetween_media.verify import FilmExpectations
    exp = FilmExpectations(tuple(args["clip_frames"]), args["blend"], 30, tuple(args["size"]), args["audio"])
    started = time.process_time()
    problems = verify_film(args["out"], exp)
    print(json.dumps({{"problems": problems, "cpu_s": time.process_time() - started, "peak_rss_kb": peak_rss_kb()}}))
"""


def _child(args: dict[str, Any]) -> tuple[dict[str, Any], float, float]:
    """Run CHILD with ``args``; returns its JSON, its CPU seconds and its ru_maxrss in MB (os.wait4)."""
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(  # noqa: S603 (our own interpreter and script)
            [sys.executable, "-c", CHILD.format(here=str(HERE)), json.dumps(args)], stdout=out
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit(f"child failed ({proc.returncode}) for {args['mode']}")
        out.seek(0)
        result = json.loads(out.read().strip().splitlines()[-1])
    rss_mb = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 2**20
    return result, usage.ru_utime + usage.ru_stime, rss_mb


def installed_size() -> dict[str, object]:
    import av

    site = Path(av.__file__).resolve().parent.parent
    sizes = {}
    for name in ("av", "av.libs"):
        folder = site / name
        sizes[name] = round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6, 1)
    return {
        "av_version": av.__version__,
        "ffmpeg": {k: ".".join(map(str, v)) for k, v in av.library_versions.items()},
        "installed_mb": {**sizes, "total": round(sum(sizes.values()), 1)},
        "site_packages": str(site),
    }


def measure(
    res: str,
    shots: int,
    seconds: float,
    distinct: int,
    audio: bool,
    grain: float,
    blend: int,
    preset: str,
    crf: int,
    work: Path,
) -> dict[str, Any]:
    from inbetween_media import synth

    size = SIZES[res]
    frames = round(seconds * 30)
    started = time.process_time()
    clips = [
        synth.make_clip(
            work / f"{res}_{k}.mp4",
            k,
            frames=frames,
            size=size,
            tone_hz=450.0 if audio else None,
            grain=grain,
            preset="veryfast",
            crf=20,
        )
        for k in range(distinct)
    ]
    gen_cpu = time.process_time() - started
    film = work / f"{res}_film.mp4"
    order = [str(clips[k % distinct]) for k in range(shots)]
    stitch, stitch_cpu, stitch_rss = _child(
        {"mode": "stitch", "clips": order, "out": str(film), "blend": blend, "preset": preset, "crf": crf}
    )
    verify, verify_cpu, _ = _child(
        {
            "mode": "verify",
            "out": str(film),
            "clip_frames": stitch["clip_frames"],
            "blend": blend,
            "size": [stitch["width"], stitch["height"]],
            "audio": audio,
        }
    )
    film_s = float(stitch["duration_s"])
    return {
        "resolution": res,
        "size": list(size),
        "shots": shots,
        "shot_seconds": seconds,
        "blend": blend,
        "audio": audio,
        "preset": preset,
        "crf": crf,
        "frames": stitch["frames"],
        "film_s": round(film_s, 3),
        "stitch_cpu_s": round(float(stitch["cpu_s"]), 2),
        "stitch_child_cpu_s": round(stitch_cpu, 2),  # the whole child: imports, probing, pictures
        "stitch_cpu_per_film_s": round(stitch_cpu / film_s, 3),
        "stitch_cpu_ms_per_frame": round(1000 * float(stitch["cpu_s"]) / int(stitch["frames"]), 2),
        "stitch_peak_rss_mb": round(int(stitch["peak_rss_kb"]) / 1024, 1),
        "stitch_ru_maxrss_mb": round(stitch_rss, 1),  # floored by this parent's RSS at fork
        "pictures_encode_cpu_s": round(float(stitch["pictures_encode_cpu_s"]), 3),
        "verify_cpu_s": round(verify_cpu, 2),
        "verify_cpu_per_film_s": round(verify_cpu / film_s, 3),
        "verify_peak_rss_mb": round(int(verify["peak_rss_kb"]) / 1024, 1),
        "verify_problems": verify["problems"],
        "film_mb": round(int(stitch["bytes"]) / 1e6, 2),
        "inputs_mb": round(sum(Path(p).stat().st_size for p in order) / 1e6, 2),
        "clip_generation_cpu_s": round(gen_cpu, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", default="720p,1080p", help="comma-separated: " + ", ".join(SIZES))
    parser.add_argument("--shots", type=int, default=14)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--distinct", type=int, default=3, help="distinct clips made, cycled through the shots"
    )
    parser.add_argument("--no-audio", action="store_true")
    parser.add_argument("--grain", type=float, default=3.0, help="3: ~5 MB per 5 s 720p clip, ~8 Mb/s")
    parser.add_argument("--blend", type=int, default=0)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--crf", type=int, default=19)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        runs = [
            measure(
                res.strip().lower(),
                args.shots,
                args.seconds,
                args.distinct,
                not args.no_audio,
                args.grain,
                args.blend,
                args.preset,
                args.crf,
                Path(tmp),
            )
            for res in args.res.split(",")
        ]
    print(
        json.dumps(
            {
                "machine": {
                    "arch": platform.machine(),
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                },
                **installed_size(),
                "runs": runs,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
