"""One place for configuration: a frozen ``Settings`` read from the environment once, on first use.

The local stack reaches moto and the emulator by environment alone (``AWS_ENDPOINT_URL``,
``PROVIDER_BASE_URL``); no code path asks "am I local?". Secrets are never in the environment: only the
name/ARN of the Secrets Manager secret that holds them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from inbetween.domain.catalog import DEFAULT_MODEL, MODELS, REGION_BASE_URLS, base_url_for, model_spec
from inbetween.domain.costs import ReportRate, parse_amount
from inbetween.domain.webhook_events import EVERY_EVENT, parse_event_filter
from inbetween.errors import ConfigError, InvalidJob

FRAME_TRANSPORTS = ("url", "base64")


def _bool(raw: str, name: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True, slots=True)
class Settings:
    jobs_table: str
    inbox_bucket: str
    output_bucket: str
    topic_arn: str
    intake_queue_url: str
    completion_queue_url: str
    api_key_secret: str
    webhook_secret_name: str
    provider_base_url: str
    provider_region: str = "cn-beijing"
    # the Model Studio workspace: with it, the region's workspace host ({id}.{region}.maas.aliyuncs.com)
    workspace_id: str = ""
    default_model: str = DEFAULT_MODEL
    default_resolution: str = MODELS[DEFAULT_MODEL].default_resolution
    prompt_extend: bool = True
    watermark: bool = False
    frame_transport: str = "url"
    # per-model concurrency we allow ourselves; 0 means "the account's live quota" (list-quotas), with the
    # model's published quota as the fallback
    provider_concurrency: int = 0
    # tasks beyond the concurrency left PENDING in the provider's own queue (models that have one): they
    # close the hand-over gap between a task's end and the next create (`make bench`, figure "backlog").
    # None ("auto"): scaled with the concurrency, see inbetween.usecases.admission.provider_backlog
    provider_backlog: int | None = None
    default_webhook_url: str = ""
    # the event types (or patterns, video.generation.*) webhooks get unless a job.json says otherwise
    webhook_events: tuple[str, ...] = EVERY_EVENT
    stitch_queue_url: str = ""  # the stitch function's queue (films); empty where no film is stitched
    inbox_prefix: str = "inbox/"
    results_prefix: str = "results/"
    settle_seconds: int = 5
    incomplete_drop_timeout_s: int = 900
    presign_ttl_s: int = 3600
    webhook_link_ttl_s: int = 7 * 24 * 3600
    # a tick stops waiting for due checks 5 s before the next one starts (EventBridge, every minute):
    # the checks due in that gap are the next tick's, so two ticks never work on the same batch
    poll_budget_s: float = 55.0
    # 12 s: p95 notification latency under 15 s at ~7 queries per job at quota 2 (see `make bench`)
    poll_interval_s: float = 12.0
    # Loopback and plain-http webhook targets are for the local stack only.
    allow_local_webhooks: bool = False
    # Provider push (EventBridge task-finished events): the poller then only checks overdue tasks.
    push_enabled: bool = False
    push_secret_name: str = ""  # only the ProviderEventsFunction needs it
    # the month's budget in micros of the currency the provider bills (CNY); 0: none. `inbetween budget
    # set` overrides it without a redeploy (the jobs table's budget#override item)
    monthly_budget_micros: int = 0
    # reports (notifications, metadata.json, the CLI) also give each cost in this currency, at this many
    # units of it per CNY (micros: 0.137 -> 137_000); "" / 0: no conversion
    report_currency: str = ""
    report_rate_micros: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def report_rate(self) -> ReportRate | None:
        """The conversion reports add beside each cost, if one is configured."""
        if not self.report_currency or not self.report_rate_micros:
            return None
        return ReportRate(self.report_currency, self.report_rate_micros)

    def concurrency_for(self, model: str) -> int:
        """The configured concurrency, else the model's published quota (admission prefers the live one)."""
        spec = model_spec(model)
        published = spec.max_concurrent if spec else 1
        return self.provider_concurrency or published


_REQUIRED = {
    "jobs_table": "JOBS_TABLE",
    "inbox_bucket": "INBOX_BUCKET",
    "output_bucket": "OUTPUT_BUCKET",
    "topic_arn": "NOTIFY_TOPIC_ARN",
    "intake_queue_url": "INTAKE_QUEUE_URL",
    "completion_queue_url": "COMPLETION_QUEUE_URL",
    "api_key_secret": "DASHSCOPE_API_KEY_SECRET",
    "webhook_secret_name": "WEBHOOK_SECRET_NAME",
}


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    missing = [name for name in _REQUIRED.values() if not env.get(name)]
    if missing:
        raise ConfigError("missing environment variables: " + ", ".join(sorted(missing)))
    values: dict[str, Any] = {attr: env[name] for attr, name in _REQUIRED.items()}

    region = env.get("PROVIDER_REGION", "cn-beijing")
    base_url = env.get("PROVIDER_BASE_URL", "").rstrip("/")
    workspace_id = env.get("WORKSPACE_ID", "").strip()
    if not base_url:
        if region not in REGION_BASE_URLS:
            raise ConfigError(
                f"PROVIDER_REGION {region!r} is unknown; use one of {sorted(REGION_BASE_URLS)} "
                "or set PROVIDER_BASE_URL"
            )
        base_url = base_url_for(region, workspace_id or None)
    values["provider_region"] = region
    values["workspace_id"] = workspace_id
    values["provider_base_url"] = base_url

    model = env.get("DEFAULT_MODEL", DEFAULT_MODEL)
    spec = model_spec(model)
    if spec is None:
        raise ConfigError(f"DEFAULT_MODEL {model!r} is unknown; use one of {sorted(MODELS)}")
    values["default_model"] = spec.name
    resolution = env.get("DEFAULT_RESOLUTION") or spec.default_resolution  # empty: the model's own
    if resolution not in spec.resolutions:
        raise ConfigError(f"DEFAULT_RESOLUTION {resolution!r} is not offered by {spec.name}")
    values["default_resolution"] = resolution

    transport = env.get("FRAME_TRANSPORT", "url")
    if transport not in FRAME_TRANSPORTS:
        raise ConfigError(f"FRAME_TRANSPORT must be one of {FRAME_TRANSPORTS}, got {transport!r}")
    values["frame_transport"] = transport

    try:
        for attr, name, cast in (
            ("provider_concurrency", "PROVIDER_CONCURRENCY", int),
            ("settle_seconds", "SETTLE_SECONDS", int),
            ("incomplete_drop_timeout_s", "INCOMPLETE_DROP_TIMEOUT_SECONDS", int),
            ("presign_ttl_s", "PRESIGN_TTL_SECONDS", int),
            ("poll_budget_s", "POLL_BUDGET_SECONDS", float),
            ("poll_interval_s", "POLL_INTERVAL_SECONDS", float),
        ):
            if env.get(name, "") != "":
                values[attr] = cast(env[name])
    except ValueError as exc:
        raise ConfigError(f"a numeric setting is not a number: {exc}") from None
    if values.get("provider_concurrency", 0) < 0:
        raise ConfigError(f"PROVIDER_CONCURRENCY must be 0 or more, got {values['provider_concurrency']}")
    values["provider_backlog"] = _backlog(env.get("PROVIDER_BACKLOG", "").strip())

    for attr, name in (
        ("prompt_extend", "PROMPT_EXTEND"),
        ("watermark", "WATERMARK"),
        ("allow_local_webhooks", "ALLOW_LOCAL_WEBHOOKS"),
        ("push_enabled", "PUSH_ENABLED"),
    ):
        if env.get(name, "") != "":
            values[attr] = _bool(env[name], name)
    values["default_webhook_url"] = env.get("WEBHOOK_URL", "")
    if env.get("WEBHOOK_EVENTS", "").strip():
        values["webhook_events"] = parse_webhook_events(env["WEBHOOK_EVENTS"])
    values["stitch_queue_url"] = env.get("STITCH_QUEUE_URL", "")
    values["push_secret_name"] = env.get("PUSH_SECRET_NAME", "")
    values.update(_money_settings(env))
    return Settings(**values)


def _backlog(raw: str) -> int | None:
    """PROVIDER_BACKLOG: "auto" (or empty) scales it with the concurrency; a number fixes it."""
    if raw.lower() in ("", "auto"):
        return None
    if not raw.isdigit():
        raise ConfigError(
            f"PROVIDER_BACKLOG must be auto or a whole number of tasks (0 or more), got {raw!r}"
        )
    return int(raw)


def parse_webhook_events(raw: str) -> tuple[str, ...]:
    """WEBHOOK_EVENTS: comma-separated event types or patterns, e.g. "video.generation.*,budget.reached"."""
    try:
        return parse_event_filter([part.strip() for part in raw.split(",")], source="WEBHOOK_EVENTS:")
    except InvalidJob as exc:
        raise ConfigError(f"{exc.message} ({exc.hint})") from None


def _money_settings(env: dict[str, str]) -> dict[str, Any]:
    """MONTHLY_BUDGET (CNY, a decimal; 0 or empty: none), REPORT_CURRENCY and REPORT_RATE (units of
    the report currency per CNY), checked together: a rate without a currency (or the reverse) is a
    mistake worth refusing."""
    values: dict[str, Any] = {}
    try:
        values["monthly_budget_micros"] = parse_amount(
            env.get("MONTHLY_BUDGET") or "0", what="MONTHLY_BUDGET"
        )
        rate = parse_amount(env.get("REPORT_RATE") or "0", what="REPORT_RATE")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    currency = env.get("REPORT_CURRENCY", "").strip().upper()
    if bool(currency) != bool(rate):
        raise ConfigError(
            "REPORT_CURRENCY and REPORT_RATE go together (e.g. USD and 0.137, the USD per CNY); "
            f"got currency {currency!r} and rate {env.get('REPORT_RATE', '')!r}"
        )
    if currency and (len(currency) != 3 or not currency.isalpha()):
        raise ConfigError(
            f"REPORT_CURRENCY must be a three-letter currency code such as USD, got {currency!r}"
        )
    values["report_currency"], values["report_rate_micros"] = currency, rate
    return values


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


@dataclass(frozen=True, slots=True)
class Timing:
    """Pipeline clocks. Defaults suit the real provider; the local stack shortens them by environment."""

    first_poll_delay_s: float | None = None  # None: the model's shortest plausible generation time
    submit_lease_s: float = 90.0
    # the longest one create call can take (the provider client's connect, write and read timeouts, and
    # a margin): an invocation with less time left starts no create, it hands admission over instead
    submit_call_budget_s: float = 50.0
    notify_grace_s: float = 120.0
    completion_grace_s: float = 900.0
    query_rps: float = 10.0  # half the account's 20 QPS, leaving room for people and other tools
    poll_concurrency: int = 4
    # Webhook retry delays (s) before attempt n+1, the first (0) being the immediate attempt; None: the
    # Standard Webhooks schedule (5 s, 5 min, 30 min, ... about a day). WEBHOOK_RETRY_DELAYS_SECONDS.
    webhook_retry_delays_s: tuple[float, ...] | None = None
    # An endpoint whose every attempt has failed for this long is paused (WEBHOOK_PAUSE_AFTER_SECONDS).
    webhook_pause_after_s: float = 5 * 24 * 3600.0
    # With push on, a task is checked only once its event is overdue: the model's longest usual generation time
    # (or expected_generation_s) plus push_grace_s after submission, then every push_recheck_s.
    push_grace_s: float = 60.0
    push_recheck_s: float = 60.0
    expected_generation_s: float | None = None  # None: the model's longest usual generation time (5 min)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Timing:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for attr, name, cast in (
            ("first_poll_delay_s", "FIRST_POLL_DELAY_SECONDS", float),
            ("submit_lease_s", "SUBMIT_LEASE_SECONDS", float),
            ("submit_call_budget_s", "SUBMIT_CALL_BUDGET_SECONDS", float),
            ("notify_grace_s", "NOTIFY_GRACE_SECONDS", float),
            ("completion_grace_s", "COMPLETION_GRACE_SECONDS", float),
            ("query_rps", "PROVIDER_QUERY_RPS", float),
            ("poll_concurrency", "POLL_CONCURRENCY", int),
            ("push_grace_s", "PUSH_GRACE_SECONDS", float),
            ("push_recheck_s", "PUSH_RECHECK_SECONDS", float),
            ("expected_generation_s", "EXPECTED_GENERATION_SECONDS", float),
            ("webhook_pause_after_s", "WEBHOOK_PAUSE_AFTER_SECONDS", float),
        ):
            if env.get(name, "") != "":
                try:
                    values[attr] = cast(env[name])
                except ValueError:
                    raise ConfigError(f"{name} must be a number, got {env[name]!r}") from None
        if env.get("WEBHOOK_RETRY_DELAYS_SECONDS", "") != "":
            values["webhook_retry_delays_s"] = parse_retry_delays(env["WEBHOOK_RETRY_DELAYS_SECONDS"])
        return cls(**values)


def parse_retry_delays(raw: str) -> tuple[float, ...]:
    """E.g. "0,5,300,1800": the immediate attempt, then the delays before each retry (seconds)."""
    try:
        delays = tuple(float(part) for part in raw.split(","))
    except ValueError:
        raise ConfigError(f"WEBHOOK_RETRY_DELAYS_SECONDS: not seconds: {raw!r}") from None
    if len(delays) < 2 or delays[0] != 0 or any(d < 0 for d in delays):
        raise ConfigError(
            "WEBHOOK_RETRY_DELAYS_SECONDS must start with 0 (the immediate attempt) and list at least one "
            f"retry delay, none negative; got {raw!r}"
        )
    return delays
