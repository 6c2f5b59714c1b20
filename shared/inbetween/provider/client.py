"""The DashScope video task client: create, get, list and cancel tasks over one ``httpx.Client``.

One client serves every model of the catalogue: ``create_task`` posts the request to its model's create
path (kf2v: ``/services/aigc/image2video/video-synthesis``; wan2.7: ``/services/aigc/video-generation/
video-synthesis``) with the body of its shape; the task get/list/cancel calls are the same for all.

Retries: only reads (``get_task``, ``list_tasks``) are retried, on 429 / 5xx / timeouts / connection errors,
with a short capped backoff that honours ``Retry-After``. ``create_task`` is never retried: it costs money
and the provider asks not to create duplicate tasks. When a create fails after its body may have reached
the provider, the raised error has ``maybe_created = True`` and the caller reconciles with the task list.

Secrets: the API key lives in a wrapper whose repr is ``***``, is put on each request only, and never
enters a message, log line or exception. httpx exceptions (which hold the request and its headers) are
replaced by our own errors ``from None``, with messages built from our text and the provider's code/message.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from inbetween.domain import catalog
from inbetween.errors import (
    ConfigError,
    ProviderError,
    ProviderRejected,
    ProviderThrottled,
    ProviderUnavailable,
)
from inbetween.provider.models import (
    CHINA_TZ,
    CreateTaskRequest,
    ModelQuota,
    TaskPage,
    TaskRef,
    TaskState,
    TaskStatus,
    TaskSummary,
)
from inbetween.provider.validation import validate_request

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=20.0, write=20.0, pool=5.0)
CREATE_PATH = catalog.KF2V_CREATE_PATH  # the kf2v models'; each request knows its own (request.create_path)
LIST_MAX_SPAN = timedelta(hours=24)
LIST_TIME_FORMAT = "%Y%m%d%H%M%S"

# Status codes that mean "try again later" rather than "this request is wrong".
# list-quotas: the English page's path, then the Chinese page's (reference wan27-i2v.md §5.2)
QUOTA_PATHS = ("/quotas", "/models/limits")
_RETRYABLE_STATUS = frozenset({408, 425, 429}) | frozenset(range(500, 600))
# Transport failures that prove the request never left this machine.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def split_api_keys(value: str) -> tuple[str, ...]:
    """The API keys a secret holds: one, or several separated by commas, spaces or new lines (a key has
    none of those), in their order. Several keys of one account give admission one submit lane each."""
    return tuple(dict.fromkeys(part for part in re.split(r"[\s,]+", value) if part))


def api_key_ref(key: str) -> str:
    """A key's stable name where the key itself must not go: the jobs table names a lane's lease and its
    learnt ``api_key_id`` by it. A truncated SHA-256 of a random token tells nothing about the token."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class _ApiKeys:
    """Holds the API key(s) (or a function returning them) and shows ``***`` everywhere."""

    __slots__ = ("_source", "_last")

    def __init__(self, source: str | Callable[[], str]):
        self._source = source
        self._last: tuple[str, ...] = ()

    def all(self) -> tuple[str, ...]:
        value = self._source() if callable(self._source) else self._source
        keys = split_api_keys(value) if isinstance(value, str) else ()
        if not keys:
            raise ConfigError("the DashScope API key is empty; set it in the secret the settings point to")
        self._last = keys
        return keys

    def reveal(self, ref: str | None = None) -> str:
        """The first key, or the one named ``ref`` (``ConfigError`` when the secret no longer holds it)."""
        keys = self.all()
        if ref is None:
            return keys[0]
        for key in keys:
            if api_key_ref(key) == ref:
                return key
        raise ConfigError(
            "the API key this submit lane was given is no longer in the secret (keys were changed); "
            "the job waits for another lane"
        )

    def refs(self) -> tuple[str, ...]:
        return tuple(api_key_ref(key) for key in self.all())

    def scrub(self, text: str) -> str:
        """``text`` with the keys masked, for provider text we pass on (some APIs echo the key back)."""
        for key in self._last:
            if key in text:
                text = text.replace(key, "***")
        return text

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("the API key holder cannot be pickled")


class DashScopeClient:
    def __init__(
        self,
        api_key: str | Callable[[], str],
        base_url: str,
        *,
        http: httpx.Client | None = None,
        timeout: httpx.Timeout | None = None,
        get_retries: int = 2,
        user_agent: str = "inbetween/0.1",
        max_backoff_s: float = 4.0,
        time_left_s: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        """``api_key`` may be a function, read before every request (e.g. a cached secret lookup).

        ``base_url`` ends in ``/api/v1`` (a region's, or the emulator's ``http://127.0.0.1:<port>/api/v1``).
        ``time_left_s`` (e.g. ``lambda: context.get_remaining_time_in_millis() / 1000``) stops retries
        that would outlive the invocation. ``sleep`` is injectable for tests.
        """
        try:
            parsed = httpx.URL(base_url)
        except httpx.InvalidURL:
            parsed = httpx.URL("invalid:")
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigError(f"DashScope base URL must be http(s)://host/...; got {base_url!r}")
        if get_retries < 0:
            raise ConfigError("get_retries must be 0 or more")
        self._api_key = _ApiKeys(api_key)
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout or DEFAULT_TIMEOUT
        self._get_retries = get_retries
        self._user_agent = user_agent
        self._max_backoff_s = max_backoff_s
        self._time_left_s = time_left_s
        self._sleep = sleep
        self._owns_http = http is None
        self._quota_path = QUOTA_PATHS[0]
        # Built on first use: a function that never calls the provider pays nothing for it at cold start.
        self._http_client = http

    @classmethod
    def for_region(
        cls,
        region: str,
        api_key: str | Callable[[], str],
        *,
        workspace_id: str | None = None,
        **kw: Any,
    ) -> DashScopeClient:
        """A client of ``region``'s shared host, or of its workspace host with ``workspace_id``."""
        return cls(api_key, catalog.base_url_for(region, workspace_id), **kw)

    @property
    def base_url(self) -> str:
        return self._base_url

    def __repr__(self) -> str:
        return f"DashScopeClient(base_url={self._base_url!r}, api_key={self._api_key!r})"

    # -- the four operations ---------------------------------------------------------------------------

    def key_refs(self) -> tuple[str, ...]:
        """One reference (``api_key_ref``) per API key the secret holds, in its order."""
        return self._api_key.refs()

    def create_task(self, request: CreateTaskRequest, *, key_ref: str | None = None) -> TaskRef:
        """Submit one task, with the first API key or the one ``key_ref`` names. Validated first
        (``InvalidJob`` before any network); never retried.

        On failure raises ``ProviderError`` with ``maybe_created`` telling whether the task may exist.
        """
        validate_request(request)
        headers = {"X-DashScope-Async": "enable"}
        if request.uses_oss_urls:
            # temporary uploads (oss://...) are resolved by the provider only when asked to
            headers["X-DashScope-OssResourceResolve"] = "enable"
        response = self._send(
            "POST",
            request.create_path,
            operation="create task",
            json_body=request.to_body(),
            extra_headers=headers,
            attempts=1,
            is_create=True,
            key_ref=key_ref,
        )
        body = self._json_object(response, operation="create task", maybe_created=True)
        try:
            return TaskRef.from_api(body)
        except ValueError as exc:
            raise self._malformed("create task", exc, response, body, maybe_created=True) from None

    def get_task(self, task_id: str) -> TaskState:
        """The task's current state. Retried on 429 / 5xx / network errors."""
        path = f"/tasks/{_path_segment(task_id)}"
        response = self._send("GET", path, operation="get task", task_id=task_id)
        body = self._json_object(response, operation="get task", task_id=task_id)
        try:
            return TaskState.from_api(body)
        except ValueError as exc:
            raise self._malformed("get task", exc, response, body, task_id=task_id) from None

    def list_tasks(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        model: str | None = None,
        status: TaskStatus | None = None,
        page_no: int = 1,
        page_size: int = 10,
        api_key_id: str | None = None,
    ) -> TaskPage:
        """One page of tasks of the whole account (any API key, or only ``api_key_id``'s: the filter the
        SDK's ``list`` sends). Retried like ``get_task``.

        ``start``/``end`` must be timezone-aware; they are sent as China time (UTC+8), the zone the
        provider's other timestamps use. The span may not exceed 24 h (the provider's rule); leaving
        ``start`` out means 24 h before ``end``, leaving both out means the last 24 h.
        """
        params = _list_params(start, end, model, status, page_no, page_size)
        if api_key_id is not None:
            params["api_key_id"] = api_key_id
        response = self._send("GET", "/tasks", operation="list tasks", params=params)
        body = self._json_object(response, operation="list tasks")
        try:
            return TaskPage.from_api(body)
        except ValueError as exc:
            raise self._malformed("list tasks", exc, response, body) from None

    def iter_tasks(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        model: str | None = None,
        status: TaskStatus | None = None,
        page_size: int = 10,
        api_key_id: str | None = None,
    ) -> Iterator[TaskSummary]:
        """Every task matching the filters, page after page."""
        page_no = 1
        while True:
            page = self.list_tasks(
                start=start,
                end=end,
                model=model,
                status=status,
                page_no=page_no,
                page_size=page_size,
                api_key_id=api_key_id,
            )
            yield from page.tasks
            if not page.tasks or page_no >= page.total_page:
                return
            page_no += 1

    def cancel_task(self, task_id: str) -> None:
        """Cancel a PENDING task. A task already running cannot be cancelled (``ProviderRejected``,
        code ``UnsupportedOperation``). Not retried."""
        path = f"/tasks/{_path_segment(task_id)}/cancel"
        self._send("POST", path, operation="cancel task", task_id=task_id, attempts=1)

    def get_quota(self, model: str) -> ModelQuota | None:
        """The account's live limits for ``model`` (its name in this region), None if no row names it.

        The provider's two pages disagree on the path (reference wan27-i2v.md §5.2): the English one
        documents ``/quotas``, the Chinese one ``/models/limits``. We ask ``/quotas`` first (what client
        code in the wild calls), then the other on a 404, and keep to whichever answered."""
        paths = dict.fromkeys([self._quota_path, *QUOTA_PATHS])
        for path in paths:
            try:
                response = self._send("GET", path, operation="list quotas", params={"model": model})
            except ProviderRejected as error:
                if error.status_code == 404:
                    continue
                raise
            self._quota_path = path
            body = self._json_object(response, operation="list quotas")
            try:
                return ModelQuota.from_rows(body, model)
            except ValueError as exc:
                raise self._malformed("list quotas", exc, response, body) from None
        raise ProviderRejected(
            "DashScope list quotas: neither /quotas nor /models/limits exists at this base URL",
            code="NotFound",
            status_code=404,
        )

    def close(self) -> None:
        if self._owns_http and self._http_client is not None:
            self._http_client.close()
            self._http_client = None

    def __enter__(self) -> DashScopeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _http(self) -> httpx.Client:
        if self._http_client is None:
            # No redirects: a redirect of a POST that costs money is never something we want to follow.
            self._http_client = httpx.Client(timeout=self._timeout, follow_redirects=False)
        return self._http_client

    # -- transport, retries, error mapping --------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        task_id: str | None = None,
        params: dict[str, str | int] | None = None,
        json_body: dict[str, Any] | None = None,
        extra_headers: dict[str, str] | None = None,
        attempts: int | None = None,
        is_create: bool = False,
        key_ref: str | None = None,
    ) -> httpx.Response:
        attempts = attempts if attempts is not None else 1 + self._get_retries
        for attempt in range(1, attempts + 1):
            try:
                return self._send_once(
                    method,
                    path,
                    operation=operation,
                    task_id=task_id,
                    params=params,
                    json_body=json_body,
                    extra_headers=extra_headers,
                    is_create=is_create,
                    key_ref=key_ref,
                )
            except ProviderUnavailable as error:
                delay = self._retry_delay(error, attempt)
                if attempt >= attempts or delay is None:
                    raise
                logger.warning(
                    "DashScope %s failed, retrying in %.2fs (attempt %d of %d): %s",
                    operation,
                    delay,
                    attempt,
                    attempts,
                    error,
                )
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send_once(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        task_id: str | None,
        params: dict[str, str | int] | None,
        json_body: dict[str, Any] | None,
        extra_headers: dict[str, str] | None,
        is_create: bool,
        key_ref: str | None = None,
    ) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {self._api_key.reveal(key_ref)}",
            "Accept": "application/json",
            "User-Agent": self._user_agent,
            **(extra_headers or {}),
        }
        content = None
        if json_body is not None:
            content = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        error: ProviderError | None = None
        try:
            response = self._http().request(
                method,
                self._base_url + path,
                params=params,
                content=content,
                headers=headers,
                timeout=self._timeout,
            )
        except _NOT_SENT as exc:
            error = ProviderUnavailable(
                f"DashScope {operation}: could not connect ({_transport_reason(exc)}); nothing was sent",
                code=type(exc).__name__,
                task_id=task_id,
                maybe_created=False,
            )
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
            error = ProviderRejected(
                f"DashScope {operation}: the request could not be built ({type(exc).__name__}); "
                "check the base URL",
                code=type(exc).__name__,
                task_id=task_id,
                maybe_created=False,
            )
        except httpx.TransportError as exc:
            # Read/write timeouts, dropped connections, protocol errors: the request may have arrived.
            error = ProviderUnavailable(
                f"DashScope {operation}: no complete response ({_transport_reason(exc)})"
                + ("; the task may have been created" if is_create else ""),
                code=type(exc).__name__,
                task_id=task_id,
                maybe_created=is_create,
            )
        if error is not None:
            logger.info("DashScope %s: %s", operation, error)
            raise error
        if response.is_success:
            return response
        raise self._error_from_response(response, operation=operation, task_id=task_id, is_create=is_create)

    def _error_from_response(
        self, response: httpx.Response, *, operation: str, task_id: str | None, is_create: bool
    ) -> ProviderError:
        status = response.status_code
        body = _json_or_none(response)
        code = _text_field(body, "code")
        provider_message = _text_field(body, "message")
        request_id = _text_field(body, "request_id") or response.headers.get("x-request-id")
        if provider_message:
            detail = self._api_key.scrub(provider_message)[:500]
        elif body is None:
            detail = f"HTTP {status} with a non-JSON body"
        else:
            detail = f"HTTP {status}"
        message = f"DashScope {operation} failed: {detail}"

        throttled = status == 429 or (code or "").startswith("Throttling")
        retryable = throttled or status in _RETRYABLE_STATUS
        if throttled:
            error_class: type[ProviderError] = ProviderThrottled
        elif retryable:
            error_class = ProviderUnavailable
        else:
            error_class = ProviderRejected
        # A 5xx may come after the provider stored the task; 429 and 4xx mean it was refused.
        maybe_created = is_create and retryable and not throttled
        error = error_class(
            message,
            code=code,
            request_id=request_id,
            status_code=status,
            task_id=task_id,
            maybe_created=maybe_created,
        )
        retry_after = _retry_after_s(response) if retryable else None
        if retry_after is not None:
            error.retry_after_s = retry_after
        logger.info("DashScope %s: %s", operation, error)
        return error

    def _retry_delay(self, error: ProviderUnavailable, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        retry_after = error.retry_after_s
        if retry_after is not None:
            if retry_after > self._max_backoff_s:
                return None  # the provider asks for longer than we wait inside one invocation
            delay = retry_after
        else:
            # capped exponential backoff with jitter, so parallel pollers do not retry in step
            delay = min(self._max_backoff_s, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)  # noqa: S311
        if self._time_left_s is not None:
            if self._time_left_s() < delay + self._timeout_budget_s():
                return None
        return delay

    def _timeout_budget_s(self) -> float:
        parts = (self._timeout.connect, self._timeout.read, self._timeout.write)
        return sum(p for p in parts if p is not None)

    def _json_object(
        self,
        response: httpx.Response,
        *,
        operation: str,
        task_id: str | None = None,
        maybe_created: bool = False,
    ) -> dict[str, Any]:
        body = _json_or_none(response)
        if not isinstance(body, dict):
            raise ProviderUnavailable(
                f"DashScope {operation}: HTTP {response.status_code} without a JSON object body",
                code="MalformedResponse",
                status_code=response.status_code,
                task_id=task_id,
                maybe_created=maybe_created,
            )
        return body

    def _malformed(
        self,
        operation: str,
        exc: ValueError,
        response: httpx.Response,
        body: dict[str, Any],
        *,
        task_id: str | None = None,
        maybe_created: bool = False,
    ) -> ProviderUnavailable:
        # Retryable: a proxy or a provider hiccup is likelier than a permanent change of the API.
        return ProviderUnavailable(
            f"DashScope {operation}: unexpected response ({exc})",
            code="MalformedResponse",
            request_id=_text_field(body, "request_id"),
            status_code=response.status_code,
            task_id=task_id,
            maybe_created=maybe_created,
        )


def _list_params(
    start: datetime | None,
    end: datetime | None,
    model: str | None,
    status: TaskStatus | None,
    page_no: int,
    page_size: int,
) -> dict[str, str | int]:
    for name, moment in (("start", start), ("end", end)):
        if moment is not None and moment.tzinfo is None:
            raise ValueError(f"list_tasks({name}=...) needs a timezone-aware datetime")
    if start is not None:
        effective_end = end or datetime.now(UTC)
        if start > effective_end:
            raise ValueError("list_tasks: start is after end")
        if effective_end - start > LIST_MAX_SPAN:
            raise ValueError("list_tasks: the provider lists at most 24 hours at a time; narrow start/end")
    if page_no < 1 or page_size < 1:
        raise ValueError("list_tasks: page_no and page_size start at 1")
    params: dict[str, str | int] = {"page_no": page_no, "page_size": page_size}
    if start is not None:
        params["start_time"] = start.astimezone(CHINA_TZ).strftime(LIST_TIME_FORMAT)
    if end is not None:
        params["end_time"] = end.astimezone(CHINA_TZ).strftime(LIST_TIME_FORMAT)
    if model is not None:
        params["model_name"] = model
    if status is not None:
        params["status"] = TaskStatus(status).value
    return params


def _path_segment(task_id: str) -> str:
    if not isinstance(task_id, str) or not task_id.strip():
        raise ValueError("task_id is empty")
    return quote(task_id, safe="")


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def _text_field(body: Any, key: str) -> str | None:
    if isinstance(body, dict) and body.get(key) not in (None, ""):
        return str(body[key])
    return None


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _transport_reason(exc: httpx.TransportError) -> str:
    # Only the class name: httpx messages can quote the request, and the request holds the key.
    return type(exc).__name__
