"""Completion: a 1 GiB video served over HTTP on loopback, streamed by ``Blobs.store_video`` (as the
completion function does: httpx stream -> multipart upload, verified) into moto in server mode (its own
process, so its memory is not ours). Peak memory growth of the process that streams, and its throughput
as a ratio of a plain boto3 ``upload_file`` of the same bytes from a local file to such a server; beside
it, the plain way (the stream to /tmp, then ``upload_file``). Each side runs in a fresh interpreter so
its peak RSS (VmHWM) is its own, against a moto server of its own."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.common import REGION, ROOT, Figure, at_least, at_most, fake_aws_env, median, tiny_mp4

MEMORY_GOAL_MIB = 100.0
THROUGHPUT_GOAL = 0.5
GIB = 1024**3


def _boxes(data: bytes) -> list[tuple[str, bytes]]:
    out, at = [], 0
    while at < len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        out.append((kind.decode(), data[at : at + size]))
        at += size
    return out


def write_video(path: Path, size: int) -> None:
    """ftyp + moov of a real MP4, then one mdat box padded so the file is exactly ``size`` bytes."""
    boxes = dict(_boxes(tiny_mp4()))
    head = boxes["ftyp"] + boxes["moov"]
    payload = boxes["mdat"][8:]
    body = size - len(head) - 8
    with path.open("wb") as out:
        out.write(head)
        out.write(struct.pack(">I4s", body + 8, b"mdat"))
        out.write(payload)
        left = body - len(payload)
        block = bytes(8 * 1024 * 1024)
        while left:
            n = min(left, len(block))
            out.write(block[:n])
            left -= n
        out.flush()
        os.fsync(out.fileno())  # on disk before any side is timed: no write-back of 1 GiB under the first


class _FileHandler(BaseHTTPRequestHandler):
    path_on_disk: Path

    def log_message(self, *_args) -> None:
        pass

    def do_GET(self) -> None:
        size = self.path_on_disk.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with self.path_on_disk.open("rb") as src:
            # by the kernel (sendfile): the provider's server is not on our cores, so it should take as
            # little of this machine's two as it can (a Python read/write loop competed with both sides)
            self.connection.sendfile(src)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _peak_rss_mib() -> tuple[float, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def worker(mode: str, endpoint: str, bucket: str, source: str) -> dict:
    """One side, in a fresh interpreter: 'stream' (the pipeline's path), 'upload_file' (the baseline: a
    local file, no download) or 'download_then_upload' (the plain way: the stream to /tmp, then
    upload_file; what the streamed path is weighed against beside the goal)."""
    import boto3

    session = boto3.session.Session(region_name=REGION)
    if mode == "stream":
        import dataclasses

        import httpx
        from inbetween.config import load_settings
        from inbetween.provider.video_download import VIDEO_TIMEOUT, HttpVideoSource
        from inbetween.wiring import build_deps

        names = dict.fromkeys(
            ("JOBS_TABLE", "INBOX_BUCKET", "INTAKE_QUEUE_URL", "COMPLETION_QUEUE_URL")
            + ("NOTIFY_TOPIC_ARN", "DASHSCOPE_API_KEY_SECRET", "WEBHOOK_SECRET_NAME"),
            "x",
        )
        settings = load_settings(
            dict(names, OUTPUT_BUCKET=bucket, PROVIDER_BASE_URL="http://127.0.0.1:9/api/v1")
        )
        # the completion's path: the video source's streamed GET (its chunk size) into Blobs.store_video;
        # its HTTP client as the source builds it, but built before measuring (as the boto3 side's client)
        http = httpx.Client(timeout=VIDEO_TIMEOUT, follow_redirects=False)
        deps = dataclasses.replace(build_deps(settings, session=session), videos=HttpVideoSource(http))
        _reset_peak()
        rss0, _ = _peak_rss_mib()
        started = time.perf_counter()
        with deps.videos.open(source) as video:
            stored = deps.blobs.store_video(
                bucket,
                "results/bench/video.mp4",
                video.chunks,
                expected_bytes=video.length,
                metadata={"task-id": "bench"},
            )
        seconds = time.perf_counter() - started
        size = stored.size
        deps.close()
        http.close()
    elif mode == "download_then_upload":
        import httpx

        s3 = session.client("s3")
        s3.head_bucket(Bucket=bucket)
        http = httpx.Client(timeout=60.0)
        with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp:
            local = Path(tmp) / "video.mp4"
            _reset_peak()
            rss0, _ = _peak_rss_mib()
            started = time.perf_counter()
            with http.stream("GET", source) as resp, local.open("wb") as out:
                for chunk in resp.iter_bytes(1024 * 1024):
                    out.write(chunk)
            s3.upload_file(str(local), bucket, "plain/video.mp4")
            seconds = time.perf_counter() - started
            size = local.stat().st_size
        http.close()
    else:
        s3 = session.client("s3")
        s3.head_bucket(Bucket=bucket)  # build the client's connection before measuring
        _reset_peak()
        rss0, _ = _peak_rss_mib()
        started = time.perf_counter()
        s3.upload_file(source, bucket, "baseline/video.mp4")
        seconds = time.perf_counter() - started
        size = os.path.getsize(source)
    _, peak = _peak_rss_mib()
    return {
        "mode": mode,
        "seconds": seconds,
        "bytes": size,
        "rss_start_mib": rss0,
        "peak_growth_mib": peak - rss0,
    }


def _run_worker(mode: str, endpoint: str, bucket: str, source: str) -> dict:
    env = dict(
        os.environ, **fake_aws_env(), AWS_ENDPOINT_URL=endpoint, POWERTOOLS_METRICS_NAMESPACE="Inbetween"
    )
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "shared"), str(ROOT / "local")])
    out = subprocess.run(
        [sys.executable, "-m", "bench.completion", "worker", mode, endpoint, bucket, source],
        env=env, capture_output=True, text=True, check=True, cwd=str(ROOT), timeout=900,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def _fresh_moto(bucket: str) -> Iterator[str]:
    """A moto server of its own for one measured side, with the versioned output bucket: on one shared
    server the same side took 8 to 16 s from round to round (the GiB the run before left in it); on a
    new server each time, 12 to 14 s."""
    import boto3

    port = _free_port()
    moto = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, **fake_aws_env()),
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        session = boto3.session.Session(
            region_name=REGION, **{"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        )
        s3 = session.client("s3", endpoint_url=endpoint)
        for _ in range(100):
            try:
                s3.list_buckets()
                break
            except Exception:  # noqa: BLE001 - the server is still starting
                time.sleep(0.1)
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        yield endpoint
    finally:
        moto.terminate()
        moto.wait(timeout=30)


def run(quick: bool = False) -> list[Figure]:
    size = 64 * 1024 * 1024 if quick else GIB
    rounds = 1 if quick else 3
    bucket = "output-bench"
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        path = Path(tmp) / "video.mp4"
        write_video(path, size)
        handler = type("Handler", (_FileHandler,), {"path_on_disk": path})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/results/video.mp4"
        results: dict[str, list[dict]] = {"stream": [], "upload_file": [], "download_then_upload": []}
        try:
            for round_no in range(rounds):  # interleaved, each side first in turn: drift hits every side
                sides = [("stream", url), ("upload_file", str(path)), ("download_then_upload", url)]
                for mode, source in sides[round_no % 3 :] + sides[: round_no % 3]:
                    with _fresh_moto(bucket) as endpoint:
                        results[mode].append(_run_worker(mode, endpoint, bucket, source))
        finally:
            server.shutdown()
            server.server_close()
    stream_s = median([r["seconds"] for r in results["stream"]])
    upload_s = median([r["seconds"] for r in results["upload_file"]])
    plain_s = median([r["seconds"] for r in results["download_then_upload"]])
    growth = max(r["peak_growth_mib"] for r in results["stream"])
    base_growth = max(r["peak_growth_mib"] for r in results["upload_file"])
    ratio = (size / stream_s) / (size / upload_s)
    mib = size / 1024 / 1024
    settings = {"video_bytes": size, "rounds": rounds, "s3": "moto_server (separate process, a new one per side run)",
                "source": "HTTP on 127.0.0.1", "part_size_mib": 8}  # fmt: skip
    return [
        Figure(
            key="completion.peak_memory_growth",
            name=f"Completion: peak memory growth streaming a {mib:,.0f} MiB video",
            value=round(growth, 1),
            unit="MiB",
            goal=f"<= {MEMORY_GOAL_MIB:.0f}",
            passed=at_most(growth, MEMORY_GOAL_MIB),
            baseline=f"boto3 upload_file of the same file: {base_growth:.0f} MiB",
            settings=settings,
            detail=results,
        ),
        Figure(
            key="completion.throughput_ratio",
            name=f"Completion: throughput streaming a {mib:,.0f} MiB video to S3",
            value=round(ratio, 2),
            unit="x boto3 upload_file",
            goal=f">= {THROUGHPUT_GOAL}",
            passed=at_least(ratio, THROUGHPUT_GOAL),
            baseline=f"upload_file: {mib / upload_s:.0f} MiB/s; store_video: {mib / stream_s:.0f} MiB/s; the "
            f"stream to /tmp then upload_file: {mib / plain_s:.0f} MiB/s ({plain_s / stream_s:.2f}x store_video's time)",
            settings=settings,
        ),
    ]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        print(json.dumps(worker(*sys.argv[2:6])))
    else:
        print(json.dumps([f.to_dict() for f in run(quick=True)], indent=2))
