"""The HTTP side: routes, auth, quotas, injected faults, JSON/XML envelopes, the result-file host."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from inbetween.domain.catalog import FIXED_DURATION_S, MODELS, model_spec, provider_model_name

from .config import EmulatorConfig, Faults
from .errors import ApiError, status_for
from .media_models import MEDIA_MODELS, MediaModelFacts, media_model, user_api_unique_key
from .render import Renderer
from .tasks import (
    TERMINAL,
    TaskEngine,
    TaskSnapshot,
    TaskStatus,
    _SlidingWindow,
    _Task,
    china_time,
    parse_list_time,
)
from .uploads import UPLOAD_PATH, UploadRefused, UploadStore, parse_multipart

API_PREFIX = "/api/v1"
CREATE_PATH = f"{API_PREFIX}/services/aigc/image2video/video-synthesis"
# wan2.7's create path; kf2v models posted here get "url error, please check url!"
MEDIA_CREATE_PATH = f"{API_PREFIX}/services/aigc/video-generation/video-synthesis"
WRONG_CREATE_PATH = MEDIA_CREATE_PATH  # the name kf2v-era code knows it by
TASKS_PATH = f"{API_PREFIX}/tasks"
UPLOADS_PATH = f"{API_PREFIX}/uploads"
# list-quotas: the EN page documents /quotas, the zh page /models/limits (reference §5.2): both served
QUOTA_PATHS = (f"{API_PREFIX}/quotas", f"{API_PREFIX}/models/limits")
RESULTS_PREFIX = "/results/"

_INJECTED_CODES = {500: "InternalError", 503: "ServiceUnavailable"}


@dataclass(frozen=True, slots=True)
class TaskCounters:
    queries: int
    downloads: int


@dataclass(frozen=True, slots=True)
class EmulatorStats:
    creates_accepted: int
    creates_rejected: dict[str, int]  # by error code
    queries: int  # GET /tasks/{id}
    list_calls: int
    cancels: int
    downloads: int  # result downloads that started sending a body
    quota_reads: int  # list-quotas answers
    per_task: dict[str, TaskCounters]


@dataclass(frozen=True, slots=True)
class TaskInfo:
    status: TaskStatus
    model: str
    created_at: float
    api_key_id: str


def api_key_id_for(api_key: str) -> str:
    """A stable numeric id like the provider's, derived from the key without revealing it."""
    return str(int(hashlib.sha256(api_key.encode()).hexdigest()[:8], 16))


class EmulatorServer:
    """The local DashScope emulator (kf2v and wan2.7). ``with EmulatorServer(config) as emulator:
    emulator.base_url``; ``emulator.upload_host`` is where getPolicy sends uploads."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.faults: Faults = self.config.faults or Faults(seed=self.config.seed)
        self._renderer = Renderer(
            self.config.render_workers, self.config.render_preset, self.config.render_cache_entries
        )
        self._secret = (self.config.signing_secret or secrets.token_hex(16)).encode()
        self.uploads = UploadStore(
            secret=hashlib.sha256(b"uploads|" + self._secret).digest(),
            access_key_id=self.config.oss_access_key_id,
            policy_ttl_s=self.config.upload_policy_ttl_s,
            file_ttl_s=self.config.oss_file_ttl_s,
            max_file_size_mb=self.config.upload_max_file_size_mb,
            capacity_limit_mb=self.config.upload_capacity_limit_mb,
            account=ACCOUNT_ID,
        )
        self._engine = TaskEngine(self.config, self.faults, self._renderer, self.uploads)
        self._policy_window = _SlidingWindow()
        self._keys = {key: api_key_id_for(key) for key in self.config.api_keys}
        self._httpd: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._stats_lock = threading.Lock()

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> EmulatorServer:
        handler = type("BoundHandler", (_Handler,), {"emulator": self})
        self._httpd = ThreadingHTTPServer((self.config.host, self.config.port), handler)
        self._httpd.daemon_threads = True
        serve = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="emulator-http",
            daemon=True,
        )
        tick = threading.Thread(target=self._tick, name="emulator-tick", daemon=True)
        self._threads = [serve, tick]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._renderer.shutdown()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _tick(self) -> None:
        while not self._stopping.wait(self.config.tick_interval_s):
            self._engine.advance()

    # --- addresses --------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the emulator is not started")
        return self._httpd.server_address[1]

    @property
    def root_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}{API_PREFIX}"

    @property
    def upload_host(self) -> str:
        """Where getPolicy sends the SDK's form uploads: a path of this server (OSS stands in)."""
        return f"{self.root_url}{UPLOAD_PATH}"

    # --- observability and seams ------------------------------------------------------------------
    @property
    def on_task_finished(self) -> list[Callable[[TaskSnapshot], None]]:
        """Callbacks run once when a task reaches SUCCEEDED, FAILED or CANCELED (seam for push events)."""
        return self._engine.on_task_finished

    @property
    def tasks(self) -> dict[str, TaskInfo]:
        return {
            task_id: TaskInfo(s.status, s.model, s.created_at, s.api_key_id)
            for task_id, s in self._engine.snapshots().items()
        }

    def task(self, task_id: str) -> TaskSnapshot | None:
        return self._engine.snapshots().get(task_id)

    @property
    def stats(self) -> EmulatorStats:
        counters = self._engine.counters
        with self._stats_lock:
            per_task = {
                task_id: TaskCounters(task.queries, task.downloads)
                for task_id, task in self._engine._tasks.items()
            }
            return EmulatorStats(
                creates_accepted=counters.creates_accepted,
                creates_rejected=dict(counters.creates_rejected),
                queries=counters.queries,
                list_calls=counters.list_calls,
                cancels=counters.cancels,
                downloads=counters.downloads,
                quota_reads=counters.quota_reads,
                per_task=per_task,
            )

    @property
    def renders(self) -> int:
        """How many videos were actually encoded (cache hits excluded)."""
        return self._renderer.renders

    def advance(self) -> None:
        """Apply the clock now (useful with a ManualClock right after ``clock.advance``)."""
        self._engine.advance()

    def wait_until_idle(self, timeout_s: float = 60.0) -> bool:
        """Apply the clock and wait (real time) until no started render is unfinished."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._engine.advance()
            if self._engine.idle():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    # --- request plumbing used by the handler -----------------------------------------------------
    def _count_rejection(self, code: str) -> None:
        with self._stats_lock:
            rejected = self._engine.counters.creates_rejected
            rejected[code] = rejected.get(code, 0) + 1

    def _count(self, name: str) -> None:
        with self._stats_lock:
            counters = self._engine.counters
            setattr(counters, name, getattr(counters, name) + 1)

    def _authenticate(self, header: str | None) -> str:
        if not header or not header.strip():
            raise ApiError("InvalidApiKey", "No API-key provided.", 401)
        scheme, _, key = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError("InvalidApiKey", "No API-key provided.", 401)
        api_key_id = self._keys.get(key.strip())
        if api_key_id is None:
            raise ApiError("InvalidApiKey", "Invalid API-key provided.", 401)
        return api_key_id

    def _signature(self, task_id: str, expires: int) -> str:
        digest = hmac.new(self._secret, f"GET\n{task_id}.mp4\n{expires}".encode(), hashlib.sha1).digest()
        return base64.b64encode(digest).decode()

    def video_url(self, task_id: str, expires: int) -> str:
        signature = quote(self._signature(task_id, expires), safe="")
        return (
            f"{self.root_url}{RESULTS_PREFIX}{task_id}.mp4?Expires={expires}"
            f"&OSSAccessKeyId={self.config.oss_access_key_id}&Signature={signature}"
        )

    def _task_output(self, task: _Task) -> dict[str, Any]:
        body: dict[str, Any] = {"task_id": task.task_id, "task_status": task.status.value}
        body["submit_time"] = china_time(task.submit_at)
        if task.scheduled_at is not None:
            body["scheduled_time"] = china_time(task.scheduled_at)
        if task.end_at is not None and task.status in TERMINAL:
            body["end_time"] = china_time(task.end_at)
        if task.status is TaskStatus.SUCCEEDED:
            assert task.end_at is not None  # noqa: S101 - a succeeded task has ended; narrows the type
            body["video_url"] = self.video_url(task.task_id, self._engine.link_expiry(task.end_at))
        body["orig_prompt"] = task.orig_prompt
        if task.actual_prompt is not None:
            body["actual_prompt"] = task.actual_prompt
        if task.status is TaskStatus.FAILED:
            if task.code is not None:
                body["code"] = task.code
            if task.message is not None:
                body["message"] = task.message
        return body

    def _usage(self, task: _Task) -> dict[str, Any]:
        if task.is_media:
            # A1's field list; for a continuation the clip's seconds are input, the rest output, and
            # duration (billed) the total, which is the likely reading (§3.3, unconfirmed)
            return {
                "duration": task.duration,
                "input_video_duration": task.input_video_duration,
                "output_video_duration": task.duration - task.input_video_duration,
                "video_count": 1,
                "SR": int(task.resolution.rstrip("P")),
            }
        spec = model_spec(task.model)
        usage: dict[str, Any] = {"video_duration": FIXED_DURATION_S, "video_count": 1}
        if spec is not None and spec.usage_style == "video_ratio":
            usage["video_ratio"] = "standard"
        else:
            usage["SR"] = int(task.resolution.rstrip("P"))
        return usage

    def _list_entry(self, task: _Task) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "api_key_id": task.api_key_id,
            "caller_parent_id": "1000000000000000",
            "caller_uid": "1000000000000000",
            "gmt_create": _ms(task.submit_at),
            "model_name": task.model,
            "region": self.config.region,
            "request_id": task.request_id,
            "status": task.status.value,
            "task_id": task.task_id,
            "user_api_unique_key": user_api_unique_key(task.model),
        }
        if task.scheduled_at is not None:
            entry["start_time"] = _ms(task.scheduled_at)
        if task.end_at is not None and task.status in TERMINAL:
            entry["end_time"] = _ms(task.end_at)
        return entry

    # --- list-quotas (reference §5.2) -----------------------------------------------------------------
    def quota_models(self) -> list[str]:
        """The models this account can call, by the names the configured region knows them."""
        names = [provider_model_name(name, self.config.region) for name in MODELS]
        return list(dict.fromkeys([*names, *MEDIA_MODELS]))

    def quota_row(self, model: str) -> dict[str, Any]:
        rps = self.faults.submit_rps_figure(model)
        return {
            "model": model,
            "workspace_id": self.config.workspace_id,
            "model_limit": {
                "request_limit": _number(rps),
                "request_limit_period": 1,
                "usage_limit": None,
                "usage_limit_field": None,
                "usage_limit_period": None,
                "async_user_queue_limit": self.faults.queue_limit(model),
                "async_user_concurrency_limit": self.faults.concurrency_figure(model),
            },
            "workspace_limit": None,
        }


ACCOUNT_ID = "1000000000000000"


def _number(value: float | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def _ms(epoch: float) -> int:
    return int(round(epoch * 1000))


def _request_id() -> str:
    return str(uuid.uuid4())


class _Handler(BaseHTTPRequestHandler):
    emulator: EmulatorServer
    protocol_version = "HTTP/1.1"
    server_version = "DashScopeEmulator/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests run hundreds of requests

    # --- envelopes ----------------------------------------------------------------------------------
    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        body.setdefault("request_id", _request_id())
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_error(self, error: ApiError) -> None:
        self._send_json(error.http_status, {"code": error.code, "message": error.message})

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # --- routing ------------------------------------------------------------------------------------
    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        body = self._read_body()
        if path == CREATE_PATH:
            self._create(body)
        elif path == MEDIA_CREATE_PATH:
            self._media_endpoint(body)
        elif path == UPLOAD_PATH:
            self._upload(body)
        elif path.startswith(TASKS_PATH + "/") and path.endswith("/cancel"):
            self._query_guarded(lambda api_key_id: self._cancel(path[len(TASKS_PATH) + 1 : -len("/cancel")]))
        else:
            self._not_found()

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith(RESULTS_PREFIX):
            self._download()
        elif path.rstrip("/") == TASKS_PATH:
            self._query_guarded(lambda api_key_id: self._list())
        elif path.rstrip("/") == UPLOADS_PATH:
            self._get_policy()
        elif path.rstrip("/") in QUOTA_PATHS:
            self._quotas()
        elif path.startswith(TASKS_PATH + "/"):
            self._query_guarded(lambda api_key_id: self._query(path[len(TASKS_PATH) + 1 :].rstrip("/")))
        else:
            self._not_found()

    def do_HEAD(self) -> None:
        if urlsplit(self.path).path.startswith(RESULTS_PREFIX):
            self._download()
        else:
            self._not_found()

    def _not_found(self) -> None:
        self._send_json(404, {"code": "NotFound", "message": "Not Found"})

    # --- create -------------------------------------------------------------------------------------
    def _create(self, raw: bytes, facts: MediaModelFacts | None = None) -> None:
        """Create on the kf2v endpoint, or (``facts`` given) on the video-generation one for wan2.7."""
        emulator = self.emulator
        try:
            api_key_id = emulator._authenticate(self.headers.get("Authorization"))
            if self.headers.get("X-DashScope-Async", "").strip().lower() != "enable":
                # The message is documented; the HTTP status is not. 403 is an assumption.
                raise ApiError("AccessDenied", "current user api does not support synchronous calls", 403)
            if emulator.faults.create_latency_s > 0:
                time.sleep(emulator.faults.create_latency_s)
            injected = emulator.faults.take_create_error()
            if injected is not None:
                raise ApiError(_INJECTED_CODES.get(injected, "InternalError"), None, injected)
            try:
                body = json.loads(raw or b"null")
            except ValueError as error:
                raise ApiError("InvalidParameter", "The request body is not valid JSON.", 400) from error
            oss_resolve = self.headers.get("X-DashScope-OssResourceResolve", "").strip().lower() == "enable"
            if facts is not None:
                task = emulator._engine.create_media(body, api_key_id, facts, oss_resolve=oss_resolve)
            else:
                task = emulator._engine.create(body, api_key_id, oss_resolve=oss_resolve)
        except ApiError as error:
            emulator._count_rejection(error.code)
            self._send_error(error)
            return
        self._send_json(
            200,
            {"request_id": task.request_id, "output": {"task_status": "PENDING", "task_id": task.task_id}},
        )

    def _media_endpoint(self, raw: bytes) -> None:
        """``/services/aigc/video-generation/video-synthesis``: wan2.7's create; anything else keeps
        the answers this path always gave (``_wrong_endpoint``)."""
        try:
            model = (json.loads(raw or b"null") or {}).get("model")
        except (ValueError, AttributeError):
            model = None
        facts = media_model(model)
        if facts is None:
            self._wrong_endpoint(raw)
        else:
            self._create(raw, facts)

    def _wrong_endpoint(self, raw: bytes) -> None:
        """What an old SDK gets for a kf2v model posted to the text/image-to-video endpoint: the
        guide quotes only the message, "url error, please check url!"; the 400 InvalidParameter
        envelope around it is an assumption. Other models: "Model not exist." (also 400)."""
        try:
            self.emulator._authenticate(self.headers.get("Authorization"))
            try:
                model = (json.loads(raw or b"null") or {}).get("model", "")
            except (ValueError, AttributeError):
                model = ""
            if isinstance(model, str) and "kf2v" in model:
                raise ApiError("InvalidParameter", "url error, please check url!", 400)
            raise ApiError("InvalidParameter", "Model not exist.", 400)
        except ApiError as error:
            self.emulator._count_rejection(error.code)
            self._send_error(error)

    # --- task management ---------------------------------------------------------------------------
    def _query_guarded(self, action: Callable[[str], None]) -> None:
        emulator = self.emulator
        try:
            api_key_id = emulator._authenticate(self.headers.get("Authorization"))
            if emulator.faults.query_latency_s > 0:
                time.sleep(emulator.faults.query_latency_s)
            injected = emulator.faults.take_query_error()
            if injected is not None:
                raise ApiError(_INJECTED_CODES.get(injected, "InternalError"), None, injected)
            if not emulator._engine.admit_query():
                raise ApiError("Throttling.RateQuota")
            action(api_key_id)
        except ApiError as error:
            self._send_error(error)

    def _query(self, task_id: str) -> None:
        emulator = self.emulator
        emulator._count("queries")
        task = emulator._engine.find(task_id)
        if task is None:
            self._send_json(200, {"output": {"task_id": task_id, "task_status": "UNKNOWN"}})
            return
        with emulator._engine._lock:
            task.queries += 1
            body: dict[str, Any] = {"request_id": _request_id(), "output": emulator._task_output(task)}
            if task.status is TaskStatus.SUCCEEDED:
                body["usage"] = emulator._usage(task)
        self._send_json(200, body)

    def _list(self) -> None:
        emulator = self.emulator
        emulator._count("list_calls")
        params = {key: values[-1] for key, values in parse_qs(urlsplit(self.path).query).items()}
        page_no = _positive_int(params.get("page_no"), 1, "page_no")
        page_size = _positive_int(params.get("page_size"), 10, "page_size")
        tasks = emulator._engine.list_tasks(
            start=parse_list_time(params["start_time"]) if params.get("start_time") else None,
            end=parse_list_time(params["end_time"]) if params.get("end_time") else None,
            model_name=params.get("model_name") or None,
            status=params.get("status") or None,
            api_key_id=params.get("api_key_id") or None,
            region=params.get("region") or None,
        )
        page = tasks[(page_no - 1) * page_size : page_no * page_size]
        with emulator._engine._lock:
            data = [emulator._list_entry(task) for task in page]
        self._send_json(
            200,
            {
                "total": len(tasks),
                "data": data,
                "total_page": max(1, math.ceil(len(tasks) / page_size)) if tasks else 0,
                "page_no": page_no,
                "request_id": _request_id(),
                "page_size": page_size,
            },
        )

    def _cancel(self, task_id: str) -> None:
        self.emulator._engine.cancel(task_id)
        self._send_json(200, {"request_id": _request_id()})

    # --- temporary storage: getPolicy and the upload host (reference §7.5) ---------------------------
    def _get_policy(self) -> None:
        emulator = self.emulator
        params = {key: values[-1] for key, values in parse_qs(urlsplit(self.path).query).items()}
        try:
            api_key_id = emulator._authenticate(self.headers.get("Authorization"))
            if params.get("action") != "getPolicy":
                raise ApiError("InvalidParameter", "The action parameter must be getPolicy.", 400)
            model = params.get("model") or ""
            if not model:
                raise ApiError("InvalidParameter", "Field required: model", 400)
            if media_model(model) is None and model_spec(model) is None:
                raise ApiError("InvalidParameter", "Model not exist.", 400)
            now = emulator.config.clock()
            with emulator._engine._lock:
                admitted = emulator._policy_window.admit(
                    model, now, emulator.faults.upload_policy_rate_limit()
                )
            if not admitted:
                raise ApiError("Throttling.RateQuota")
            data = emulator.uploads.issue(model, api_key_id, now, emulator.upload_host)
        except ApiError as error:
            self._send_error(error)
            return
        self._send_json(200, {"request_id": _request_id(), "data": data})

    def _upload(self, raw: bytes) -> None:
        """The OSS PostObject stand-in: no Authorization header, a signed policy in the form."""
        emulator = self.emulator
        try:
            parts = parse_multipart(self.headers.get("Content-Type", ""), raw)
            emulator.uploads.accept(parts, emulator.config.clock())
        except UploadRefused as refused:
            self._send_oss_error(refused.status, refused.code, refused.message)
            return
        self.send_response(200)  # success_action_status=200: an empty 200, which the SDK requires
        self.send_header("Content-Length", "0")
        self.send_header("x-oss-request-id", uuid.uuid4().hex[:24].upper())
        self.end_headers()

    # --- list-quotas ---------------------------------------------------------------------------------
    def _quotas(self) -> None:
        emulator = self.emulator
        params = {key: values[-1] for key, values in parse_qs(urlsplit(self.path).query).items()}
        try:
            emulator._authenticate(self.headers.get("Authorization"))
            page_no = _positive_int(params.get("page_no"), 1, "page_no")
            page_size = _positive_int(params.get("page_size"), 20, "page_size")
        except ApiError as error:
            self._send_error(error)
            return
        emulator._count("quota_reads")
        models = emulator.quota_models()
        if params.get("model"):
            models = [m for m in models if m == params["model"]]
        if params.get("name"):
            models = [m for m in models if params["name"].lower() in m.lower()]
        page = models[(page_no - 1) * page_size : page_no * page_size]
        self._send_json(
            200,
            {
                "request_id": _request_id(),
                "success": True,
                "output": {
                    "total": len(models),
                    "page_no": page_no,
                    "page_size": page_size,
                    "quotas": [emulator.quota_row(m) for m in page],
                },
            },
        )

    # --- result files (OSS-like) -------------------------------------------------------------------
    def _send_oss_error(self, status: int, code: str, message: str, extra: str = "") -> None:
        request_id = uuid.uuid4().hex[:24].upper()
        data = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n'
            f"  <Code>{code}</Code>\n  <Message>{message}</Message>\n"
            f"  <RequestId>{request_id}</RequestId>\n  <HostId>{self.headers.get('Host', '')}</HostId>\n"
            f"{extra}</Error>\n"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-oss-request-id", request_id)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _download(self) -> None:
        emulator = self.emulator
        parts = urlsplit(self.path)
        name = parts.path[len(RESULTS_PREFIX) :]
        task_id = name.removesuffix(".mp4")
        params = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        try:
            expires = int(params.get("Expires", ""))
        except ValueError:
            self._send_oss_error(403, "AccessDenied", "AccessDenied")
            return
        now = emulator.config.clock()
        if now > expires:
            self._send_oss_error(
                403,
                "AccessDenied",
                "Request has expired.",
                f"  <Expires>{_iso(expires)}</Expires>\n  <ServerTime>{_iso(now)}</ServerTime>\n",
            )
            return
        expected = emulator._signature(task_id, expires)
        if params.get("OSSAccessKeyId") != emulator.config.oss_access_key_id or not hmac.compare_digest(
            params.get("Signature", ""), expected
        ):
            self._send_oss_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
            )
            return
        video = emulator._engine.video(task_id) if name.endswith(".mp4") else None
        if video is None:
            self._send_oss_error(404, "NoSuchKey", "The specified key does not exist.")
            return
        if emulator.faults.download_latency_s > 0:
            time.sleep(emulator.faults.download_latency_s)
        start, end, status = 0, len(video) - 1, 200
        range_header = self.headers.get("Range")
        if range_header and range_header.startswith("bytes="):
            first, _, last = range_header[6:].split(",")[0].partition("-")
            try:
                if first:
                    start, end = int(first), int(last) if last else len(video) - 1
                else:
                    start, end = max(0, len(video) - int(last)), len(video) - 1
                end = min(end, len(video) - 1)
                if start > end:
                    raise ValueError
                status = 206
            except ValueError:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(video)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        body = video[start : end + 1]
        self.send_response(status)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{hashlib.md5(video).hexdigest().upper()}"')  # noqa: S324 - an ETag
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(video)}")
        self.end_headers()
        if self.command == "HEAD":
            return
        emulator._count("downloads")
        drop = emulator.faults.take_download_drop()
        if drop is None:
            self.wfile.write(body)
            return
        # the full Content-Length was promised; send part of it and hang up
        self.wfile.write(body[: int(len(body) * max(0.0, min(drop, 0.99)))])
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _positive_int(value: str | None, default: int, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as error:
        raise ApiError("InvalidParameter", f"{name} must be a positive integer.", 400) from error
    if number < 1:
        raise ApiError("InvalidParameter", f"{name} must be a positive integer.", 400)
    return number


__all__ = ["EmulatorServer", "EmulatorStats", "TaskCounters", "TaskInfo", "api_key_id_for", "status_for"]
