"""``make demo``: the whole pipeline on this machine, one sample job, end to end, in well under a minute.

Starts the local stack (moto server, the DashScope emulator, the three functions in-process) and a local
webhook receiver holding the stack's signing secret, drops the bundled keyframe pair with a prompt, shows
the job's progress, then copies the video and its metadata.json to ``demo-output/`` (video.mp4,
metadata.json) and prints the metadata, the verified webhook (headers and body) and what PyAV reads in
the MP4. Exit status 0 on success; otherwise 1 with the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from inbetween_local.cli import CliError, Target, follow
from inbetween_local.stack.template import REPO_ROOT

SAMPLES = Path(__file__).resolve().parent / "samples"
DEFAULT_PROMPT = "a red ball rolls along the road from left to right while the sun sets"


def _target(stack: Any) -> Target:
    return Target(
        description=f"local stack at {stack.moto_url}",
        inbox_bucket=stack.inbox_bucket,
        output_bucket=stack.output_bucket,
        jobs_table=stack.table_name,
        endpoint_url=stack.moto_url,
        region="us-east-1",
        local=True,
    )


def probe_video(path: Path) -> dict[str, Any]:
    """What a player will see: codec, size, duration (PyAV)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        duration = (
            float(stream.duration * stream.time_base)
            if stream.duration is not None
            else float(container.duration or 0) / 1_000_000
        )
        return {
            "codec": stream.codec_context.name,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "frames": stream.frames,
            "fps": float(stream.average_rate) if stream.average_rate else None,
            "duration_s": round(duration, 2),
            "audio": container.streams.audio[0].codec_context.name if container.streams.audio else None,
        }


def run(stack: Any, *, output_dir: Path, prompt: str, timeout: float, out: Any = None) -> int:
    from inbetween_local.receiver import WebhookReceiver

    out = out or sys.stdout

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    target = _target(stack)
    with WebhookReceiver(stack.webhook_secret) as receiver:
        job_name = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
        say(f"webhook receiver: {receiver.url} (verifies with the stack's signing secret)")
        s3 = stack.client("s3")
        prefix = f"inbox/{job_name}/"
        job_json = {"prompt": prompt, "webhook_url": receiver.url}
        since = time.time()
        s3.put_object(Bucket=stack.inbox_bucket, Key=prefix + "job.json", Body=json.dumps(job_json).encode())
        for role in ("first", "last"):
            s3.put_object(
                Bucket=stack.inbox_bucket,
                Key=f"{prefix}{role}.png",
                Body=(SAMPLES / f"{role}.png").read_bytes(),
                ContentType="image/png",
            )
        say(f"dropped samples/first.png + samples/last.png as s3://{stack.inbox_bucket}/{prefix}")
        say(f"prompt: {prompt}")
        say(_model_line(stack.environment))
        say()
        try:
            job = follow(target, job_name, since=since, timeout=timeout, out=out)
        except CliError as exc:
            say(f"demo FAILED: {exc}")
            return 1
        if job.status.value != "STORED":
            error = f"{job.error.code}: {job.error.message}" if job.error else "no error recorded"
            say(f"demo FAILED: the job ended {job.status.value} ({error})")
            return 1
        say(f"\nstored in {time.time() - since:.1f} s after the drop")

        output_dir.mkdir(parents=True, exist_ok=True)
        video_path = output_dir / "video.mp4"
        metadata_key = job.video_key.rsplit("/", 1)[0] + "/metadata.json"
        s3.download_file(stack.output_bucket, job.video_key, str(video_path))
        metadata = json.loads(s3.get_object(Bucket=stack.output_bucket, Key=metadata_key)["Body"].read())
        metadata_path = output_dir / "metadata.json"
        metadata_path.write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n")

        say("\n== the video")
        say(f"s3://{stack.output_bucket}/{job.video_key}")
        say(f"copied to {_shown(video_path)} and {_shown(metadata_path)}")
        probe = probe_video(video_path)
        sound = f"{probe['audio']} soundtrack ({metadata.get('soundtrack')})" if probe["audio"] else "silent"
        say(
            f"{metadata['model']}: {probe['codec']} {probe['width']}x{probe['height']}, "
            f"{probe['duration_s']} s, {probe['frames']} frames at {probe['fps']:.0f} fps, {sound}, "
            f"{video_path.stat().st_size} bytes"
        )
        asked_s = float(metadata.get("duration_s") or 5)
        if probe["codec"] != "h264" or abs(probe["duration_s"] - asked_s) > 0.5:
            say(f"demo FAILED: the video is not a {asked_s:g}-second H.264 MP4")
            return 1
        if bool(probe["audio"]) != bool(metadata.get("soundtrack")):
            say(
                f"demo FAILED: the soundtrack is {probe['audio']}, metadata.json says {metadata.get('soundtrack')}"
            )
            return 1

        say("\n== metadata.json")
        say(json.dumps(metadata, indent=2, ensure_ascii=False))

        say("\n== the webhook the local receiver got and verified (Standard Webhooks v1)")
        try:
            event = receiver.wait_for_event(15.0)
        except TimeoutError as exc:
            say(f"demo FAILED: {exc}")
            return 1
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "user-agent"):
            if name in event.headers:
                say(f"{name}: {event.headers[name]}")
        say()
        say(json.dumps(event.payload, indent=2, ensure_ascii=False))
        if receiver.rejected:
            say(f"(the receiver also rejected {len(receiver.rejected)} request(s) with a bad signature)")
    say(f"\ndemo OK: {_shown(video_path)}")
    return 0


def _model_line(environment: dict[str, str]) -> str:
    """The deployment's default model (the job.json names none) and what it makes by default."""
    from inbetween.domain.catalog import DEFAULT_MODEL, model_spec

    name = environment.get("DEFAULT_MODEL") or DEFAULT_MODEL
    spec = model_spec(name)
    if spec is None:
        return f"model: {name} (the deployment's default)"
    resolution = environment.get("DEFAULT_RESOLUTION") or spec.default_resolution
    durations = f"{min(spec.durations)}-{max(spec.durations)} s" if len(spec.durations) > 1 else "5 s only"
    return (
        f"model: {spec.name} (the deployment's default; job.json may name another), {resolution}, "
        f"{spec.default_duration} s (offers {durations})"
    )


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None, *, stack: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inbetween_local.demo", description=__doc__)
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "demo-output")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the video")
    args = parser.parse_args(argv)
    started = time.time()
    if stack is not None:
        return run(stack, output_dir=args.output_dir, prompt=args.prompt, timeout=args.timeout)

    from inbetween_local.stack import LocalStack

    print("starting the local stack: moto server, DashScope emulator, functions...", flush=True)
    try:
        with LocalStack() as local:
            print(
                f"up in {time.time() - started:.1f} s: AWS endpoint {local.moto_url}, "
                f"emulator {local.emulator_url}",
                flush=True,
            )
            code = run(local, output_dir=args.output_dir, prompt=args.prompt, timeout=args.timeout)
    except KeyboardInterrupt:
        print("\ndemo interrupted", file=sys.stderr)
        return 130
    print(f"total {time.time() - started:.1f} s", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
