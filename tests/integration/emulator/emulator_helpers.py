"""Helpers for the emulator tests: keyframes made with Pillow, a loopback host for them, video probes."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import av
import httpx
import numpy as np
from PIL import Image

API_KEY = "sk-emulator-test-0001"
CREATE = "/services/aigc/image2video/video-synthesis"
MEDIA_CREATE = "/services/aigc/video-generation/video-synthesis"  # wan2.7
RED, BLUE, GREEN = (220, 30, 30), (30, 30, 220), (30, 200, 60)


def image_bytes(color=RED, size=(640, 360), fmt="PNG", mode="RGB") -> bytes:
    buffer = io.BytesIO()
    fill = (*color, 128) if mode == "RGBA" else color
    Image.new(mode, size, fill).save(buffer, fmt)
    return buffer.getvalue()


class FrameHost:
    """Serves keyframes from memory on 127.0.0.1 (never the guide's public URLs)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def add(self, name: str, data: bytes) -> str:
        self.files[name] = data
        return self.url(name)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class Api:
    """The raw HTTP API as the curl samples use it."""

    def __init__(self, base_url: str, api_key: str = API_KEY) -> None:
        self.base_url = base_url
        self.http = httpx.Client(timeout=60)
        self.headers = {"Authorization": f"Bearer {api_key}"}

    def create(self, body: dict[str, Any], *, headers: dict[str, str] | None = None) -> httpx.Response:
        sent = {"X-DashScope-Async": "enable", "Content-Type": "application/json", **self.headers}
        if headers is not None:
            sent = headers
        return self.http.post(self.base_url + CREATE, json=body, headers=sent)

    def submit(self, body: dict[str, Any]) -> str:
        response = self.create(body)
        assert response.status_code == 200, response.text
        return response.json()["output"]["task_id"]

    def create_media(
        self, body: dict[str, Any], *, headers: dict[str, str] | None = None, oss: bool = False
    ) -> httpx.Response:
        """A wan2.7 create, on the video-generation path (``oss``: with the resolve header)."""
        sent = {"X-DashScope-Async": "enable", "Content-Type": "application/json", **self.headers}
        if oss:
            sent["X-DashScope-OssResourceResolve"] = "enable"
        if headers is not None:
            sent = headers
        return self.http.post(self.base_url + MEDIA_CREATE, json=body, headers=sent)

    def submit_media(self, body: dict[str, Any], *, oss: bool = False) -> str:
        response = self.create_media(body, oss=oss)
        assert response.status_code == 200, response.text
        return response.json()["output"]["task_id"]

    def get(self, task_id: str) -> httpx.Response:
        return self.http.get(f"{self.base_url}/tasks/{task_id}", headers=self.headers)

    def output(self, task_id: str) -> dict[str, Any]:
        response = self.get(task_id)
        assert response.status_code == 200, response.text
        return response.json()["output"]

    def list(self, path: str = "/tasks", **params: Any) -> httpx.Response:
        return self.http.get(self.base_url + path, params=params, headers=self.headers)

    def cancel(self, task_id: str) -> httpx.Response:
        return self.http.post(f"{self.base_url}/tasks/{task_id}/cancel", headers=self.headers)

    def close(self) -> None:
        self.http.close()


@dataclass(frozen=True)
class VideoProbe:
    codec: str
    frames: int
    duration_s: float
    fps: float
    width: int
    height: int
    first: np.ndarray
    middle: np.ndarray
    last: np.ndarray


def probe(mp4: bytes) -> VideoProbe:
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return VideoProbe(
            codec=stream.codec_context.name,
            frames=len(decoded),
            duration_s=float(stream.duration * stream.time_base),
            fps=float(stream.average_rate),
            width=stream.width,
            height=stream.height,
            first=decoded[0],
            middle=decoded[len(decoded) // 2],
            last=decoded[-1],
        )


def centre_colour(frame: np.ndarray) -> np.ndarray:
    height, width, _ = frame.shape
    return frame[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4].reshape(-1, 3).mean(axis=0)


def close_to(colour: np.ndarray, expected: tuple[int, int, int], tolerance: float = 20) -> bool:
    return bool(np.all(np.abs(colour - np.array(expected)) <= tolerance))
