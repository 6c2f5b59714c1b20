"""Measure the stitch: CPU per second of film, peak RSS, and PyAV's installed size; prints JSON.

    python media/measure.py                       # 14 shots x 5 s at 720P and 1080P, with audio
    cd media && python -m measure --res 720p --shots 4 --seconds 2    # a quick look

Synthetic clips (:mod:`inbetween_media.synth`'s pictures, with grain) are made once per resolution
(``--distinct`` of them, cycled through the shots), each frame encoded as soon as it is drawn
(:func:`write_clip_streaming`: one frame in memory, not the clip's), in a child process of its own. Each
stitch and each verify runs in a child process of its own too; its CPU (user + system) comes from
``os.wait4``; its peak RSS is the child's own ``VmHWM`` (/proc/self/status), because ``ru_maxrss``
(RUSAGE_CHILDREN or wait4) is floored on Linux by the parent's RSS at fork time; both are printed. Figures
are CPU-seconds, never wall-clock.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SIZES = {"240p": (416, 240), "480p": (832, 480), "720p": (1280, 720), "1080p": (1920, 1080)}
FPS = 30
# How the synthetic clips are made (write_clip_streaming, clip_spec): bump it when a clip made from the same
# spec would come out different, so that the caches keyed by it (bench/out/stitch-clips) are made anew.
CLIP_VERSION = "stream-1"

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
if args["mode"] == "make":
    from measure import write_clip_streaming
    write_clip_streaming(args["out"], **args["spec"])
    print(json.dumps({{"peak_rss_kb": peak_rss_kb()}}))
elif args["mode"] == "stitch":
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


def clip_spec(res: str, seconds: float, k: int, audio: bool, grain: float) -> dict[str, Any]:
    """Everything that makes synthetic clip ``k`` (:func:`write_clip_streaming`'s keyword arguments)."""
    return {
        "k": k,
        "frames": round(seconds * FPS),
        "size": list(SIZES[res]),
        "fps": FPS,
        "tone_hz": 450.0 if audio else None,
        "grain": grain,
        "preset": "veryfast",
        "crf": 20,
    }


def write_clip_streaming(
    path: str | Path,
    k: int,
    *,
    frames: int,
    size: tuple[int, int] | list[int],
    fps: int = FPS,
    tone_hz: float | None = None,
    grain: float = 0.0,
    preset: str = "veryfast",
    crf: int = 20,
    audio_layout: str = "stereo",
) -> Path:
    """``synth.make_clip``'s clip (the same pictures, tone and encoder settings), streamed: each frame is
    encoded as soon as it is drawn, with its share of the tone, instead of drawing the whole clip first
    (a 5 s 1080P clip's pictures held at once are ~930 MB)."""
    from fractions import Fraction

    import av
    from inbetween_media import synth

    path = Path(path)
    width, height = size
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.codec_context.options = {"preset": preset, "crf": str(crf)}
        astream = out.add_stream("aac", rate=48000, layout=audio_layout) if tone_hz else None
        audio_done = 0
        for i in range(frames):
            picture = synth.frame_between(k, i / (frames - 1), (width, height), grain)
            frame = av.VideoFrame.from_image(picture.convert("RGB")).reformat(format="yuv420p")  # type: ignore[no-untyped-call]
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in vs.encode(frame):
                out.mux(packet)
            if astream is not None and tone_hz:
                upto = (i + 1) * 48000 // fps  # in all: synth.tone(frames * 48000 // fps, tone_hz)
                samples = synth.tone(upto - audio_done, tone_hz, phase_samples=audio_done)
                aframe = av.AudioFrame(format="fltp", layout=audio_layout, samples=len(samples))
                data = samples.tobytes()
                for plane in aframe.planes:
                    plane.update(data + bytes(plane.buffer_size - len(data)))
                aframe.sample_rate, aframe.pts, aframe.time_base = 48000, audio_done, Fraction(1, 48000)
                for packet in astream.encode(aframe):
                    out.mux(packet)
                audio_done = upto
        for stream in (vs, astream):
            if stream is not None:
                for packet in stream.encode(None):
                    out.mux(packet)
    return path


def make_clip(res: str, seconds: float, k: int, audio: bool, grain: float, out: Path) -> dict[str, float]:
    """Make synthetic clip ``k`` in a child process: its CPU-seconds (os.wait4) and peak RSS (VmHWM, MB)."""
    made, cpu, _ = _child({"mode": "make", "out": str(out), "spec": clip_spec(res, seconds, k, audio, grain)})
    return {"cpu_s": round(cpu, 2), "peak_rss_mb": round(int(made["peak_rss_kb"]) / 1024, 1)}


def make_clips(
    res: str, seconds: float, distinct: int, audio: bool, grain: float, work: Path
) -> tuple[list[Path], float]:
    """The ``distinct`` synthetic clips of one resolution, and the CPU-seconds making them took."""
    clips = [work / f"{res}_{k}.mp4" for k in range(distinct)]
    return clips, sum(make_clip(res, seconds, k, audio, grain, clip)["cpu_s"] for k, clip in enumerate(clips))


def measure_clips(
    res: str,
    clips: list[Path],
    shots: int,
    seconds: float,
    audio: bool,
    blend: int,
    preset: str,
    crf: int,
    work: Path,
) -> dict[str, Any]:
    """Stitch ``shots`` shots (``clips`` cycled through), then verify the film: each in a child process."""
    size = SIZES[res]
    distinct = len(clips)
    film = work / f"{res}_{shots}x{seconds:g}s_film.mp4"  # films of one folder may be measured at once
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
    clips, gen_cpu = make_clips(res, seconds, distinct, audio, grain, work)
    run = measure_clips(res, clips, shots, seconds, audio, blend, preset, crf, work)
    return {**run, "clip_generation_cpu_s": round(gen_cpu, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", default="720p,1080p", help="comma-separated: " + ", ".join(SIZES))
    parser.add_argument("--shots", type=int, default=14)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--distinct", type=int, default=2, help="distinct clips made, cycled through the shots"
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
