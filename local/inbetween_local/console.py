"""The local console: one readable line per job event, made from the functions' own log records.

``inbetween local up`` runs the functions in its own process, so their Powertools logger would print
its JSON records on the terminal (hundreds in a few idle minutes, mostly poller ticks). The console
takes that stream instead (``attached``): every record goes, unchanged, to a log file (and with
``verbose`` to the terminal too), and the records about a job become lines such as

    16:20:01  my-shot           dropped first.png, job.json, last.png; settling
    16:20:03  my-shot           accepted (wan2.2-kf2v-flash), job id my-shot/5d1c0e9a7b21
    16:20:03  my-shot           submitted: task 0f6c...
    16:20:05  my-shot           provider: RUNNING
    16:20:07  my-shot           provider: SUCCEEDED
    16:20:08  my-shot           stored results/my-shot/5d1c0e9a7b21/video.mp4 (412.1 KB, 3.00 CNY)
    16:20:08  my-shot           webhook attempt 1: 200 delivered
    16:20:08  my-shot           notified: STORED (video.generation.succeeded)

The lines say only what the records say: the use cases log each event once, with the fields a line
needs (``job``, ``job_id``, ``task_id``, ``provider_status``, ``video_bytes``, ``cost``, ...), and
nothing here decides what the pipeline did. Records with no job (the poller's ticks, the handlers'
per-message summaries) are silent, unless they are warnings or errors, which are always shown. A
record this module does not know, about a job or a film, is shown by its message and fields, so an
event added later is seen before it gets a line of its own.

The one presentation choice: the files of a folder uploaded together arrive as one S3 event each, so
their "dropped" records are held for ``hold_s`` and shown as one line (with the folder's settling).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

# what every Powertools record carries besides the event's own fields (not shown in a generic line)
POWERTOOLS_KEYS = frozenset(
    {
        "level",
        "location",
        "message",
        "timestamp",
        "service",
        "cold_start",
        "function_name",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "correlation_id",
        "xray_trace_id",
        "sampling_rate",
        "exception",
        "exception_name",
        "stack_trace",
    }
)
# the keys that say which job (or film) a record is about
SUBJECT_KEYS = ("job", "job_id", "film_run")
SUBJECT_WIDTH = 16
# how long the "dropped" records of one folder are gathered into one line
DROP_HOLD_S = 0.5
LOUD_LEVELS = frozenset({"WARNING", "ERROR", "CRITICAL"})


def human_size(size: int) -> str:
    """Bytes as a person reads them: 930 bytes, 412.1 KB, 3.2 MB (powers of 1000, as S3 consoles do)."""
    if size < 1000:
        return f"{size} bytes"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        if value < 1000 or unit == "GB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def clock_time(record: dict[str, Any], fallback: float) -> str:
    """The record's wall-clock time of day (Powertools: ``2026-12-02 16:20:01,123+0000``)."""
    stamp = record.get("timestamp")
    if isinstance(stamp, str) and len(stamp) >= 19 and stamp[13] == ":" and stamp[16] == ":":
        return stamp[11:19]
    return time.strftime("%H:%M:%S", time.localtime(fallback))


@dataclass
class _HeldDrop:
    """A folder's "dropped" records, waiting to be shown as one line."""

    at: str  # the first record's time of day
    since: float  # when the first arrived (the console's clock)
    files: list[str] = field(default_factory=list)
    settling: bool = False


class JobConsole:
    """Log records in, console lines out. Not thread-safe: ``ConsoleStream`` serialises its calls.

    ``feed`` takes one parsed record and answers the lines it makes now; ``due`` answers held lines whose
    time has come; ``drain`` answers every held line (at the end)."""

    def __init__(self, *, hold_s: float = DROP_HOLD_S, clock: Callable[[], float] = time.monotonic):
        self._hold_s = hold_s
        self._clock = clock
        self._names: dict[str, str] = {}  # job id -> job (folder) name, learned from the records
        self._held: dict[str, _HeldDrop] = {}  # job name -> its held drop line
        self._last: dict[str, str] = {}  # subject -> the text of its last line (repeats are dropped)

    # ---- in -----------------------------------------------------------------------------------------
    def feed(self, record: dict[str, Any]) -> list[str]:
        now = self._clock()
        lines = self.due()
        job_name = record.get("job")
        job_id = record.get("job_id")
        if isinstance(job_name, str) and isinstance(job_id, str):
            self._names[job_id] = job_name
        subject = self._subject(record)
        message = str(record.get("message", ""))
        at = clock_time(record, time.time())
        if message == "object dropped" and isinstance(job_name, str):
            held = self._held.setdefault(job_name, _HeldDrop(at=at, since=now))
            file_name = str(record.get("file", "?"))
            if file_name not in held.files:
                held.files.append(file_name)
            return lines
        if message == "drop settling" and isinstance(job_name, str) and job_name in self._held:
            self._held[job_name].settling = True
            return lines
        if subject is not None and subject in self._held:
            lines += self._release(subject)
        text = _text(message, record, about_something=subject is not None)
        if text is None:
            return lines
        line = self._line(at, subject or "-", text)
        if line is not None:
            lines.append(line)
        return lines

    def webhook_received(
        self, job_name: str, event_id: str, *, verified: bool, reason: str = ""
    ) -> list[str]:
        """A line for what the local webhook receiver saw (it is not a function: it has no log record)."""
        text = (
            f"webhook received, signature verified ({event_id})"
            if verified
            else f"webhook REJECTED by the receiver: {reason}"
        )
        line = self._line(time.strftime("%H:%M:%S"), job_name or "-", text)
        return [line] if line is not None else []

    # ---- out ----------------------------------------------------------------------------------------
    def due(self) -> list[str]:
        now = self._clock()
        ready = [name for name, held in self._held.items() if now - held.since >= self._hold_s]
        return [line for name in ready for line in self._release(name)]

    def drain(self) -> list[str]:
        return [line for name in list(self._held) for line in self._release(name)]

    def _release(self, job_name: str) -> list[str]:
        held = self._held.pop(job_name)
        text = "dropped " + ", ".join(held.files) + ("; settling" if held.settling else "")
        line = self._line(held.at, job_name, text)
        return [line] if line is not None else []

    def _line(self, at: str, subject: str, text: str) -> str | None:
        if self._last.get(subject) == text:
            return None  # the same news again (a folder still settling, a repeated warning)
        self._last[subject] = text
        return f"{at}  {subject:<{SUBJECT_WIDTH}}  {text}"

    def _subject(self, record: dict[str, Any]) -> str | None:
        job_id = record.get("job_id")
        if isinstance(job_id, str):
            return self._names.get(job_id, job_id)
        for key in SUBJECT_KEYS:
            value = record.get(key)
            if isinstance(value, str) and value:
                return value
        return None


# ---- the lines --------------------------------------------------------------------------------------
def _text(message: str, record: dict[str, Any], *, about_something: bool) -> str | None:
    """A record's line, or None when it is silent. ``about_something``: it names a job or a film."""
    level = str(record.get("level", "INFO")).upper()
    if level in LOUD_LEVELS:
        return _loud(level, message, record)
    render = _RENDERERS.get(message)
    if render is not None:
        return render(record)
    if not about_something:
        return None  # a tick, a handler's summary: the log file has it
    return _generic(message, record)


def _fields(record: dict[str, Any]) -> str:
    shown = {
        k: v
        for k, v in record.items()
        if k not in POWERTOOLS_KEYS and k not in SUBJECT_KEYS and v is not None
    }
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def _generic(message: str, record: dict[str, Any]) -> str:
    fields = _fields(record)
    return f"{message} ({fields})" if fields else message


def _loud(level: str, message: str, record: dict[str, Any]) -> str:
    fields = _fields(record)
    text = f"{level}: {message}" + (f" ({fields})" if fields else "")
    if record.get("exception_name"):
        text += f" [{record['exception_name']}; the traceback is in the log file]"
    return text


def _incomplete(record: dict[str, Any]) -> str:
    missing = record.get("missing") or []
    needs = " and ".join(str(m) for m in missing) if isinstance(missing, list) else str(missing)
    return f"incomplete: waiting for the {needs}; rejected if still missing after {record.get('timeout_s')} s"


def _accepted(record: dict[str, Any]) -> str:
    return f"accepted ({record.get('model')}), job id {record.get('job_id')}"


def _rejected(record: dict[str, Any]) -> str:
    text = f"rejected: {record.get('code')}"
    return f"{text}: {record['error']}" if record.get("error") else text


def _task_ended(record: dict[str, Any]) -> str:
    text = f"provider: {record.get('provider_status')}"
    if record.get("code"):
        text += f" ({record['code']}: {record['error']})" if record.get("error") else f" ({record['code']})"
    return text


def _stored(record: dict[str, Any]) -> str:
    facts = []
    if isinstance(record.get("video_bytes"), int):
        facts.append(human_size(record["video_bytes"]))
    cost = record.get("cost")
    if isinstance(cost, dict) and cost.get("amount") is not None:
        # the notification's shape ({"amount": "3.00", "currency": "CNY", ...}), should a record carry it
        facts.append(f"{cost['amount']} {cost.get('currency', '')}".strip())
    elif cost:
        facts.append(str(cost))  # "3.00 CNY"
    where = record.get("video_key") or "the video"
    return f"stored {where}" + (f" ({', '.join(facts)})" if facts else "")


def _notified(record: dict[str, Any]) -> str:
    text = f"notified: {record.get('status')}"
    if record.get("event_type"):
        text += f" ({record['event_type']})"
    if record.get("code"):
        text += f", error {record['code']}"
    return text


def _webhook_attempt(record: dict[str, Any]) -> str:
    state = record.get("state")
    status = record.get("status")
    said = f"{status}" if status else "no answer"
    error = f" ({record['error']})" if record.get("error") else ""
    if state == "refused":
        return f"webhook refused, never sent: {record.get('error')}"
    head = f"webhook attempt {record.get('attempt')}: {said}"
    if state == "delivered":
        return f"{head} delivered"
    if state == "gone":
        return f"{head} gone: the receiver asked not to be sent more"
    if state == "exhausted":
        return f"{head}{error}; gave up, every attempt of the schedule failed"
    return f"{head}{error}; retry in {record.get('retry_in_s')} s"


_RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "drop settling": lambda r: f"settling: looks again in {r.get('recheck_in_s')} s",
    "drop incomplete": _incomplete,
    "job accepted": _accepted,
    "job rejected": _rejected,
    "task created": lambda r: f"submitted: task {r.get('task_id')}",
    "task status": lambda r: f"provider: {r.get('provider_status')}",
    "task ended": _task_ended,
    "video stored": _stored,
    "job notified": _notified,
    "webhook attempt": _webhook_attempt,
}


class ConsoleStream:
    """What the functions' log handler writes to: each JSON line goes to the log file (and, ``verbose``,
    to ``out``), and its console lines to ``out``. Writes come from the functions' threads; one lock
    keeps lines whole and in order."""

    def __init__(self, console: JobConsole, log_file: TextIO, out: TextIO, *, verbose: bool = False):
        self.console = console
        self._log = log_file
        self._out = out
        self._verbose = verbose
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._partial += text
            while "\n" in self._partial:
                raw, self._partial = self._partial.split("\n", 1)
                self._raw_line(raw)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            self._log.flush()
            self._out.flush()

    def webhook_received(self, job_name: str, event_id: str, *, verified: bool, reason: str = "") -> None:
        """The local webhook receiver's line (from its own thread), in order with the records' lines."""
        with self._lock:
            self._print(self.console.webhook_received(job_name, event_id, verified=verified, reason=reason))

    def due(self) -> None:
        with self._lock:
            self._print(self.console.due())

    def drain(self) -> None:
        with self._lock:
            self._print(self.console.drain())

    def _raw_line(self, raw: str) -> None:
        if not raw.strip():
            return
        self._log.write(raw + "\n")
        self._log.flush()
        if self._verbose:
            self._out.write(raw + "\n")
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
        if isinstance(record, dict):
            self._print(self.console.feed(record))
        elif self._verbose:
            self._out.flush()

    def _print(self, lines: list[str]) -> None:
        for line in lines:
            self._out.write(line + "\n")
        self._out.flush()


@contextlib.contextmanager
def attached(
    logger: Any,
    log_file: TextIO,
    out: TextIO,
    *,
    verbose: bool = False,
    hold_s: float = DROP_HOLD_S,
) -> Iterator[ConsoleStream]:
    """Point ``logger``'s (a Powertools Logger's) handler at a ``ConsoleStream`` while the block runs:
    the raw records go to ``log_file``, the lines to ``out``. A thread shows held lines when their time
    comes. On exit the handler gets its stream back and what is still held is shown."""
    handler = logger.registered_handler
    if not isinstance(handler, logging.StreamHandler):
        raise TypeError(f"the functions' log handler is a {type(handler).__name__}, not a stream handler")
    stream = ConsoleStream(JobConsole(hold_s=hold_s), log_file, out, verbose=verbose)
    previous = handler.setStream(stream)  # a stream handler needs only write and flush
    stopping = threading.Event()

    def show_held_lines() -> None:
        while not stopping.wait(max(0.05, hold_s / 4)):
            stream.due()

    ticker = threading.Thread(target=show_held_lines, name="console-held-lines", daemon=True)
    ticker.start()
    try:
        yield stream
    finally:
        stopping.set()
        ticker.join(timeout=5)
        if previous is not None:
            handler.setStream(previous)
        stream.drain()
        stream.flush()


__all__ = ["ConsoleStream", "JobConsole", "attached", "clock_time", "human_size"]
