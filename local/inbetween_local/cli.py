"""``inbetween``: drop keyframes, follow jobs and fetch videos, on the local stack or a deployed one.

    inbetween local up                                  # the whole pipeline on this machine, until Ctrl-C
    inbetween drop first.png last.png --prompt "..." --wait
    inbetween jobs | status JOB | watch JOB | fetch JOB -o video.mp4
    inbetween drop-film storyboard/ --wait                # 01.png, 02.png, ... [film.json, 01.txt]: a film
    inbetween status FILM | watch FILM | fetch FILM --out DIR   # film.mp4, poster.jpg, contact-sheet.png
    inbetween webhook listen [--secret whsec_...]       # verify and print signed webhooks
    inbetween webhook replay JOB | --since TIME [--failed]   # deliver again, with the same webhook-id
    inbetween webhook resume URL                        # a paused endpoint: its waiting deliveries go out
    inbetween cancel JOB|FILM                            # withdraw it, or cancel its task while PENDING
    inbetween budget show | budget set AMOUNT           # the monthly budget, in CNY (0: none)
    inbetween spend [--month YYYY-MM] [--by model|day]  # what a month cost

Target, in this order: ``--stack NAME`` (a deployed CloudFormation stack's Outputs), ``--endpoint-url``
(a local stack's moto endpoint), the INBETWEEN_INBOX_BUCKET / INBETWEEN_OUTPUT_BUCKET / INBETWEEN_JOBS_TABLE
environment variables (with AWS_ENDPOINT_URL if set), else the state file written by ``inbetween local up``.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from inbetween_local.console import ConsoleStream

from inbetween_local.spend_cli import add_parsers as add_budget_parsers
from inbetween_local.spend_cli import cost_cell, cost_line, film_cost_cell

NO_STACK = "no local stack is running: start one with `inbetween local up`, or pass --stack NAME for a deployed stack"
ENV_NAMES = {
    "inbox_bucket": "INBETWEEN_INBOX_BUCKET",
    "output_bucket": "INBETWEEN_OUTPUT_BUCKET",
    "jobs_table": "INBETWEEN_JOBS_TABLE",
}
DEFAULT_LOCAL_STACK = "inbetween-local"


class CliError(Exception):
    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------- target
@dataclass(frozen=True, slots=True)
class Target:
    description: str
    inbox_bucket: str
    output_bucket: str
    jobs_table: str
    endpoint_url: str | None = None
    region: str | None = None
    webhook_secret_arn: str | None = None
    local: bool = False
    intake_queue: str | None = None  # the intake queue's URL, or (a local stack) its name

    def intake_queue_url(self) -> str:
        """Where ``inbetween cancel`` sends its request (the submit function carries it out)."""
        if not self.intake_queue:
            raise CliError(
                f"{self.description} does not say where its intake queue is: set INBETWEEN_INTAKE_QUEUE_URL "
                "(the stack's IntakeQueueUrl output), or pass --stack NAME"
            )
        if self.intake_queue.startswith(("http://", "https://")):
            return self.intake_queue
        return str(self.client("sqs").get_queue_url(QueueName=self.intake_queue)["QueueUrl"])

    def session(self) -> Any:
        import boto3

        if self.local:
            return boto3.session.Session(
                aws_access_key_id="testing",
                aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials for the local stack
                region_name=self.region or "us-east-1",
            )
        return boto3.session.Session(region_name=self.region) if self.region else boto3.session.Session()

    def client(self, service: str) -> Any:
        from botocore.config import Config

        config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=3, read_timeout=30)
        if service == "s3":
            config = config.merge(Config(signature_version="s3v4"))
        return self.session().client(service, endpoint_url=self.endpoint_url, config=config)

    def store(self) -> Any:
        from inbetween.aws.jobs_table import DynamoJobStore

        return DynamoJobStore(self.client("dynamodb"), self.jobs_table)


def state_file_path(explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get("INBETWEEN_STATE_FILE"):
        return Path(os.environ["INBETWEEN_STATE_FILE"])
    from inbetween_local.stack.template import REPO_ROOT

    return REPO_ROOT / ".inbetween-local.json"


def _reachable(endpoint_url: str) -> bool:
    import httpx

    try:
        httpx.get(endpoint_url.rstrip("/") + "/moto-api/", timeout=2.0, trust_env=False)
    except httpx.HTTPError:
        return False
    return True


def _local_names(stack_name: str) -> dict[str, str]:
    """Resource names of a local stack, from the template (no AWS call)."""
    from inbetween_local.stack.template import LocalTemplate, physical_name

    template = LocalTemplate.load(stack_name=stack_name)
    outputs = template.raw["Outputs"]

    def logical(output: str) -> str:
        return outputs[output]["Value"]["Ref"]

    return {
        "inbox_bucket": physical_name(template, logical("InboxBucketName")),
        "output_bucket": physical_name(template, logical("OutputBucketName")),
        "jobs_table": physical_name(template, logical("JobsTableName")),
        "intake_queue": physical_name(template, logical("IntakeQueueUrl")),
    }


def resolve_target(args: argparse.Namespace) -> Target:
    if getattr(args, "stack", None):
        return _deployed_target(args.stack, getattr(args, "region", None))
    if getattr(args, "endpoint_url", None):
        if not _reachable(args.endpoint_url):
            raise CliError(f"nothing answers at {args.endpoint_url}; {NO_STACK}")
        names = _local_names(getattr(args, "local_stack_name", None) or DEFAULT_LOCAL_STACK)
        return Target(
            description=f"local stack at {args.endpoint_url}",
            endpoint_url=args.endpoint_url,
            region="us-east-1",
            local=True,
            **names,
        )
    from_env = {attr: os.environ.get(name, "") for attr, name in ENV_NAMES.items()}
    if all(from_env.values()):
        return Target(
            description="buckets and table from INBETWEEN_* environment variables",
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
            region=getattr(args, "region", None),
            intake_queue=os.environ.get("INBETWEEN_INTAKE_QUEUE_URL") or None,
            **from_env,
        )
    path = state_file_path(getattr(args, "state_file", None))
    if not path.exists():
        raise CliError(NO_STACK)
    try:
        state = json.loads(path.read_text())
        endpoint = state["endpoint_url"]
    except (OSError, ValueError, KeyError):
        raise CliError(f"{path} is not a local stack state file; {NO_STACK}") from None
    if not _reachable(endpoint):
        raise CliError(f"{NO_STACK} (the state file {path} is left over from a stack that has stopped)")
    return Target(
        description=f"local stack at {endpoint}",
        inbox_bucket=state["inbox_bucket"],
        output_bucket=state["output_bucket"],
        jobs_table=state["jobs_table"],
        endpoint_url=endpoint,
        region=state.get("region", "us-east-1"),
        webhook_secret_arn=state.get("webhook_secret_arn"),
        local=True,
        intake_queue=(state.get("queues") or {}).get("IntakeQueue"),
    )


def _deployed_target(stack: str, region: str | None) -> Target:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        session = boto3.session.Session(region_name=region) if region else boto3.session.Session()
        resp = session.client("cloudformation").describe_stacks(StackName=stack)
    except ClientError as exc:
        raise CliError(
            f"could not read stack {stack!r}: {exc.response['Error'].get('Message', exc)}"
        ) from None
    except (BotoCoreError, OSError, AssertionError) as exc:
        raise CliError(f"could not reach CloudFormation for stack {stack!r}: {exc}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in resp["Stacks"][0].get("Outputs", [])}
    missing = [k for k in ("InboxBucketName", "OutputBucketName", "JobsTableName") if k not in outputs]
    if missing:
        raise CliError(f"stack {stack!r} has no output(s) {', '.join(missing)}: is it an inbetween stack?")
    return Target(
        description=f"stack {stack}",
        inbox_bucket=outputs["InboxBucketName"],
        output_bucket=outputs["OutputBucketName"],
        jobs_table=outputs["JobsTableName"],
        region=region,
        webhook_secret_arn=outputs.get("WebhookSigningSecretArn"),
        intake_queue=outputs.get("IntakeQueueUrl"),
    )


# ---------------------------------------------------------------------------------------------- jobs
def find_job(target: Target, ref: str) -> Any:
    """JOB is a job id (<name>/<run>) or a job name (its latest run)."""
    store = target.store()
    if "/" in ref:
        job = store.get_job(ref)
        if job is not None:
            return job
    runs = [job for job in store.recent_jobs(limit=1000) if job.job_name == ref]
    if not runs:
        raise CliError(f"no job named {ref!r} in {target.description}", code=1)
    return runs[0]


def _elapsed(job: Any, now: float | None = None) -> float:
    end = job.finished_at if job.finished_at else (now or time.time())
    return max(0.0, end - job.created_at)


def _fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def describe_job(job: Any) -> list[str]:
    lines = [
        f"job:       {job.job_name}",
        f"job id:    {job.job_id}",
        f"status:    {job.status.value}",
        f"model:     {job.model or '-'}" + (f" {job.spec.resolution}" if job.spec else ""),
        f"created:   {_fmt_time(job.created_at)}",
        f"updated:   {_fmt_time(job.updated_at)}",
        f"elapsed:   {_elapsed(job):.1f} s",
        cost_line(job),
    ]
    if job.spec and job.spec.prompt:
        lines.append(f"prompt:    {job.spec.prompt}")
    if job.task_id:
        lines.append(f"task id:   {job.task_id}")
    if job.video_key:
        size = f" ({job.video_bytes} bytes)" if job.video_bytes else ""
        lines.append(f"video:     {job.video_key}{size}")
    if job.error:
        lines.append(f"error:     {job.error.code}: {job.error.message}")
        if job.error.hint:
            lines.append(f"hint:      {job.error.hint}")
    if job.cancel_requested_at:
        lines.append(
            f"cancel:    asked {_fmt_time(job.cancel_requested_at)} ({job.cancel_source}): {_answer(job)}"
        )
    return lines


def follow(
    target: Target,
    job_name: str,
    *,
    since: float | None = None,
    timeout: float = 600.0,
    out: TextIO | None = None,
    poll_s: float = 0.5,
) -> Any:
    """Follow a job's latest run (one created after ``since``) to a final state, with a live line."""
    out = out or sys.stdout
    store = target.store()
    started = time.time()
    live = out.isatty()
    last_state = None
    job = None
    while True:
        runs = [
            j
            for j in store.recent_jobs(limit=1000)
            if j.job_name == job_name and (since is None or j.created_at >= since - 2)
        ]
        job = runs[0] if runs else None
        state = job.status.value if job else "SETTLING"
        elapsed = time.time() - (since or started)
        if live:
            out.write(f"\r{job_name}: {state:<11} {elapsed:6.1f} s ")
            out.flush()
        elif state != last_state:
            out.write(f"{job_name}: {state} ({elapsed:.1f} s)\n")
            out.flush()
        last_state = state
        if job is not None and job.status.is_final:
            if live:
                out.write("\n")
            return job
        if time.time() - started > timeout:
            if live:
                out.write("\n")
            raise CliError(f"job {job_name!r} is not finished after {timeout:.0f} s (state: {state})", code=1)
        time.sleep(poll_s)


# ---------------------------------------------------------------------------------------------- films
def find_film_run(store: Any, ref: str) -> Any | None:
    """FILM is a film name (its newest run) or a film run id (<film>/<digest>); None if it is neither."""
    if "/" in ref:
        return store.get_film_run(ref)
    runs = store.recent_film_runs(ref, limit=1)
    return runs[0] if runs else None


def _shot_duration(shot: Any) -> float | None:
    """A shot's length as asked (or its model's default): its job's, or its pending job's to be."""
    from inbetween.domain.catalog import model_spec

    if shot.spec is None:
        return None
    model = model_spec(shot.spec.model or "")
    return shot.spec.duration or (model.default_duration if model else None)


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def _film_files(run: Any) -> list[str]:
    """A stored run's keys: film.mp4, and its poster and contact sheet beside it."""
    prefix = run.video_key.rsplit("/", 1)[0] + "/"
    return [run.video_key, prefix + "poster.jpg", prefix + "contact-sheet.png"]


def describe_film(store: Any, run: Any) -> list[str]:
    """A film run, then a table of its shots (the shots' jobs as they are now)."""
    seam = f"seam {run.seam} frame{'' if run.seam == 1 else 's'}"
    lines = [
        f"film:      {run.film}",
        f"run id:    {run.run_id}",
        f"status:    {run.status.value}",
        f"shots:     {len(run.shots)} ({run.mode.value}, {seam})",
        f"created:   {_fmt_time(run.created_at)}",
        f"updated:   {_fmt_time(run.updated_at)}",
        f"elapsed:   {_elapsed(run):.1f} s",
        "cost:      "
        + film_cost_cell(
            [job for job in (store.get_job(shot.job_id) for shot in run.shots) if job is not None]
        )
        + " CNY (the sum of its shots)",
    ]
    if run.video_key:
        size = f" ({run.video_bytes} bytes)" if run.video_bytes else ""
        lines.append(f"video:     {run.video_key}{size}")
        if run.frames is not None:
            length = f", {run.duration_s:.2f} s" if run.duration_s is not None else ""
            lines.append(f"frames:    {run.frames}{length}")
        poster, sheet = _film_files(run)[1:]
        lines += [f"poster:    {poster}", f"contact:   {sheet}"]
    if run.error:
        lines.append(f"error:     {run.error.code}: {run.error.message}")
        if run.error.hint:
            lines.append(f"hint:      {run.error.hint}")
    if not run.shots:
        return lines
    rows = [("SHOT", "KEYFRAMES", "STATUS", "TASK ID", "DURATION", "COST CNY", "ERROR", "JOB ID")]
    for shot in run.shots:
        job = store.get_job(shot.job_id)
        # continue mode: a shot's job is made once the shot before it is stored; until then it is pending
        pending = getattr(shot, "pending", None) if job is None else None
        duration = _shot_duration(job or pending) if job or pending else None
        rows.append(
            (
                str(shot.index),
                f"{shot.number}->{shot.last_number}",
                job.status.value if job else ("PENDING" if pending else "MISSING"),
                (job.task_id if job else None) or "-",
                f"{duration:g}s" if duration is not None else "-",
                cost_cell(job) if job else "-",
                job.error.code if job and job.error else "-",
                shot.job_id,
            )
        )
    return [*lines, "", *_table(rows)]


def _film_report(store: Any, run: Any) -> int:
    for line in describe_film(store, run):
        print(line)
    return 0 if run.status.value == "STORED" else 1


def follow_film(
    target: Target,
    film: str,
    *,
    since: float | None = None,
    run_id: str | None = None,
    timeout: float = 1800.0,
    out: TextIO | None = None,
    poll_s: float = 1.0,
) -> Any:
    """Follow a film's newest run (one created after ``since``, or the run ``run_id`` that the folder
    makes: a folder uploaded as it was before is that earlier run) until it is final and announced."""
    out = out or sys.stdout
    store = target.store()
    started = time.time()
    live = out.isatty()
    last_state = None
    while True:
        runs = [r for r in store.recent_film_runs(film) if _is_followed(r, run_id, since)]
        run = runs[0] if runs else None
        if run is None:
            state = "SETTLING"
        elif run.status.value == "RUNNING":
            jobs = [store.get_job(shot.job_id) for shot in run.shots]
            stored = sum(1 for job in jobs if job is not None and job.status.value == "STORED")
            state = f"RUNNING ({stored}/{len(run.shots)} shots stored)"
        else:
            state = run.status.value
        elapsed = time.time() - (since or started)
        if live:
            out.write(f"\r{film}: {state:<32} {elapsed:6.1f} s ")
            out.flush()
        elif state != last_state:
            out.write(f"{film}: {state} ({elapsed:.1f} s)\n")
            out.flush()
        last_state = state
        if run is not None and run.status.is_final and run.notified_at is not None:
            if live:
                out.write("\n")
            return run
        if time.time() - started > timeout:
            if live:
                out.write("\n")
            raise CliError(f"film {film!r} is not finished after {timeout:.0f} s (state: {state})", code=1)
        time.sleep(poll_s)


def _is_followed(run: Any, run_id: str | None, since: float | None) -> bool:
    """Whether ``run`` is the one an upload at ``since`` leads to: created after it, or the run the folder
    makes (or a retry of it, ``<run>~2``) unless that one failed before the upload: the same files
    uploaded again retry a failed run, so its next attempt is the one to wait for."""
    if since is None or run.created_at >= since - 2:
        return True
    if run_id is None or (run.run_id != run_id and not run.run_id.startswith(run_id + "~")):
        return False
    failed_before = run.status.value == "FAILED" and (run.finished_at or 0.0) < since
    return not failed_before


def plan_film_digest(files: dict[str, str], read: Any) -> str:
    """The run id digest the pipeline gives a film folder (``files``: filename -> ETag, ``read``: a
    filename's bytes), by the domain's own rules; raises InvalidJob for a folder it would refuse."""
    from inbetween.domain.drops import decode_prompt_txt
    from inbetween.domain.films import (
        FILM_JSON,
        FilmOptions,
        film_digest,
        keyframe_number,
        order_keyframes,
        parse_film_json,
        plan_shots,
        prompt_file_stem,
    )
    from inbetween.errors import InvalidJob

    keyframes = order_keyframes(
        {name: etag for name, etag in files.items() if keyframe_number(name) is not None}
    )
    film_json = next((name for name in files if name.lower() == FILM_JSON), None)
    options = parse_film_json(read(film_json)) if film_json else FilmOptions()
    by_stem = {k.filename.rpartition(".")[0]: k.number for k in keyframes}
    prompts: dict[int, str] = {}
    for name in sorted(files):
        stem = prompt_file_stem(name)
        if stem is None:
            continue
        if stem not in by_stem:
            raise InvalidJob(
                f"{name} sits beside no keyframe named {stem}.<image>",
                code="InvalidFilm",
                hint="name a shot's prompt file after its first keyframe (03.txt beside 03.png)",
                field=name,
            )
        prompts[by_stem[stem]] = decode_prompt_txt(read(name))
    return film_digest(plan_shots(keyframes, options, prompts), options)


def _inbox_folder(s3: Any, bucket: str, prefix: str) -> dict[str, str] | None:
    """The files directly under ``prefix`` (filename -> ETag); None if the inbox may not be listed."""
    from botocore.exceptions import ClientError

    files: dict[str, str] = {}
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix) :]
                if name and "/" not in name:
                    files[name] = obj.get("ETag", "")
    except ClientError:
        return None
    return files


# ---------------------------------------------------------------------------------------------- commands
def cmd_drop(args: argparse.Namespace) -> int:
    # Which inputs make a job is the model's (wan2.7-i2v: a first frame alone will do; kf2v: a pair, or a
    # first frame and a template): the pipeline checks the set and answers with error.json, as for any drop.
    media = {
        "first": Path(args.first) if args.first else None,
        "last": Path(args.last) if args.last else None,
        "audio": Path(args.audio) if args.audio else None,
        "first_clip": Path(args.first_clip) if args.first_clip else None,
    }
    named = media["first"] or media["first_clip"]
    if named is None:
        raise CliError("give a FIRST frame, or --first-clip to continue a clip (wan2.7-i2v)")
    for path in media.values():
        if path is not None and not path.is_file():
            raise CliError(f"{path} is not a file")
    target = resolve_target(args)
    job_name = args.job or f"{named.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    fields: dict[str, Any] = {
        "prompt": args.prompt,
        "negative_prompt": args.negative_prompt,
        "model": args.model,
        "resolution": args.resolution,
        "duration": args.duration,
        "seed": args.seed,
        "template": args.template,
        "watermark": args.watermark,
        "prompt_extend": args.prompt_extend,
        "webhook_url": args.webhook_url,
        "webhook_events": args.webhook_events.split(",") if args.webhook_events else None,
    }
    job_json = {k: v for k, v in fields.items() if v is not None}
    s3 = target.client("s3")
    prefix = f"inbox/{job_name}/"
    since = time.time()
    uploads: list[tuple[str, bytes, str]] = []
    if job_json:
        uploads.append((prefix + "job.json", json.dumps(job_json, indent=2).encode(), "application/json"))
    for role, path in media.items():
        if path is not None:
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            uploads.append((f"{prefix}{role}{path.suffix.lower()}", path.read_bytes(), content_type))
    for key, body, content_type in uploads:
        s3.put_object(Bucket=target.inbox_bucket, Key=key, Body=body, ContentType=content_type)
        print(f"uploaded s3://{target.inbox_bucket}/{key}")
    print(f"job {job_name!r} dropped on {target.description}")
    if not args.wait:
        print(f"follow it with: inbetween watch {job_name}")
        return 0
    job = follow(target, job_name, since=since, timeout=args.timeout)
    return _final_report(job)


def cmd_drop_film(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError
    from inbetween.domain.drops import INPUT_NAMES, check_job_name
    from inbetween.domain.films import FILM_JSON, is_film_file, is_film_folder, keyframe_number
    from inbetween.errors import InvalidJob

    # everything that can be told from the folder is checked here, before connecting or uploading
    folder = Path(args.folder)
    if not folder.is_dir():
        raise CliError(f"{folder} is not a folder")
    film = args.name or folder.resolve().name
    if "/" in film:
        raise CliError(f"the film name {film!r} has a '/': give --name a plain folder name")
    try:
        check_job_name(film)
    except InvalidJob as exc:
        raise CliError(f"{exc.message} ({exc.hint})") from None
    names = sorted(path.name for path in folder.iterdir() if path.is_file())
    if not is_film_folder(names):
        inputs = [n for n in names if "." in n and n.lower().partition(".")[0] in INPUT_NAMES]
        if inputs:
            raise CliError(
                f"{folder} is not a film: it holds {', '.join(inputs)}, an ordinary job's input "
                "(drop it with `inbetween drop`, or name the keyframes 01.png, 02.png, ...)"
            )
        raise CliError(
            f"{folder} is not a film: it has no film.json and no numbered keyframes (01.png, 02.png, ...)"
        )
    film_files = [name for name in names if is_film_file(name)]
    try:
        plan_film_digest({name: name for name in film_files}, lambda name: (folder / name).read_bytes())
    except InvalidJob as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        raise CliError(f"{folder} is not a film the pipeline would make: {exc.message}{hint}") from None
    target = resolve_target(args)
    s3 = target.client("s3")
    prefix = f"inbox/{film}/"
    remote = _inbox_folder(s3, target.inbox_bucket, prefix)
    if remote is not None and not is_film_folder(list(remote) + film_files):
        inputs = sorted(n for n in remote if "." in n and n.lower().partition(".")[0] in INPUT_NAMES)
        raise CliError(
            f"s3://{target.inbox_bucket}/{prefix} holds {', '.join(inputs)}, an ordinary job's input: the "
            "pipeline would take the folder for a job; pass another --name or delete those files"
        )

    def upload_order(name: str) -> tuple[int, int, str]:
        # film.json and prompts first: the keyframes complete the film, and then it starts
        if name.lower() == FILM_JSON:
            return (0, 0, name)
        number = keyframe_number(name)
        return (1, 0, name) if number is None else (2, number, name)

    since = time.time()
    etags: dict[str, str] = {}
    for name in sorted(film_files, key=upload_order):
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        resp = s3.put_object(
            Bucket=target.inbox_bucket,
            Key=prefix + name,
            Body=(folder / name).read_bytes(),
            ContentType=content_type,
        )
        etags[name] = resp.get("ETag", "")
        print(f"uploaded s3://{target.inbox_bucket}/{prefix}{name}")
    skipped = [name for name in names if name not in etags]
    if skipped:
        print(f"skipped (not part of a film): {', '.join(skipped)}")
    extras = sorted(n for n in (remote or {}) if is_film_file(n) and n not in etags)
    if extras:
        print(
            f"note: s3://{target.inbox_bucket}/{prefix} also holds {', '.join(extras)}, not in {folder}: "
            f"the film includes {'it' if len(extras) == 1 else 'them'} (delete to leave out)"
        )
    keyframes = sum(1 for name in {*etags, *extras} if keyframe_number(name) is not None)
    print(f"film {film!r} dropped on {target.description}: {keyframes} keyframes, {keyframes - 1} shots")
    if not args.wait:
        print(f"follow it with: inbetween watch {film}")
        return 0
    run_id = None
    try:
        files = {name: (remote or {})[name] for name in extras} | etags

        def read(name: str) -> bytes:
            if name in etags:
                return (folder / name).read_bytes()
            return bytes(s3.get_object(Bucket=target.inbox_bucket, Key=prefix + name)["Body"].read())

        run_id = f"{film}/{plan_film_digest(files, read)}"
    except (InvalidJob, ClientError, BotoCoreError, OSError):
        run_id = None  # only a shortcut: without it, --wait waits for a run created after the upload
    run = follow_film(target, film, since=since, run_id=run_id, timeout=args.timeout)
    return _film_report(target.store(), run)


def _final_report(job: Any) -> int:
    for line in describe_job(job):
        print(line)
    return 0 if job.status.value == "STORED" else 1


def cmd_jobs(args: argparse.Namespace) -> int:
    target = resolve_target(args)
    store = target.store()
    jobs = store.recent_jobs(limit=args.limit)
    if not jobs:
        print(f"no jobs yet on {target.description}")
    rows = [("JOB", "STATUS", "MODEL", "CREATED", "ELAPSED", "COST CNY", "JOB ID")]
    for job in jobs:
        rows.append(
            (
                job.job_name,
                job.status.value,
                job.model or "-",
                _fmt_time(job.created_at),
                f"{_elapsed(job):.1f}s",
                cost_cell(job),
                job.job_id,
            )
        )
    for line in _table(rows) if jobs else []:
        print(line)
    # a film's shots are jobs named after the film (listed above); its runs, newest of each film, below
    newest: dict[str, Any] = {}
    for run in store.recent_film_runs(limit=max(args.limit, 1) * 5):
        newest.setdefault(run.film, run)
    if newest:
        films = [("FILM", "STATUS", "SHOTS", "CREATED", "ELAPSED", "COST CNY", "RUN ID")]
        for run in list(newest.values())[: args.limit]:
            shots = [job for job in (store.get_job(shot.job_id) for shot in run.shots) if job is not None]
            films.append(
                (
                    run.film,
                    run.status.value,
                    str(len(run.shots)),
                    _fmt_time(run.created_at),
                    f"{_elapsed(run):.1f}s",
                    film_cost_cell(shots),  # a film costs what its shots cost
                    run.run_id,
                )
            )
        if jobs:
            print()
        for line in _table(films):
            print(line)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    target = resolve_target(args)
    store = target.store()
    # a name with film runs is a film (its shots are jobs of that name too); a job id is a job's first
    if "/" in args.job and store.get_job(args.job) is not None:
        run = None
    else:
        run = find_film_run(store, args.job)
    if run is not None:
        for line in describe_film(store, run) + _delivery_lines(store, run.run_id, run.status.value):
            print(line)
        return 0
    job = find_job(target, args.job)
    for line in describe_job(job) + _delivery_lines(store, job.job_id, job.status.value):
        print(line)
    return 0


def describe_delivery(delivery: Any, endpoint: Any) -> list[str]:
    """A webhook delivery and its log: each attempt's time, HTTP status or error, and the next attempt."""
    from inbetween.domain.webhook_events import endpoint_label

    attempts = f"{delivery.attempts} attempt{'' if delivery.attempts == 1 else 's'}"
    replays = f", replayed {delivery.replays}x" if delivery.replays else ""
    paused = " (endpoint PAUSED: `inbetween webhook resume URL`)" if endpoint and endpoint.paused else ""
    lines = [
        f"webhook:   {endpoint_label(delivery.url)}",
        f"delivery:  {delivery.delivery_id} {delivery.state.value}, {attempts}{replays}{paused}",
    ]
    for entry in delivery.log:
        if entry.note:
            what = entry.note
        elif entry.status:
            what = f"HTTP {entry.status}" + (f": {entry.error}" if entry.error else "")
        else:
            what = entry.error or entry.state.value
        nxt = f"  -> next attempt {_fmt_time(entry.next_attempt_at)}" if entry.next_attempt_at else ""
        lines.append(f"  {_fmt_time(entry.at)}  {what}{nxt}")
    if delivery.next_attempt_at and delivery.state.value == "pending":
        lines.append(f"  next attempt: {_fmt_time(delivery.next_attempt_at)}")
    return lines


def _delivery_lines(store: Any, subject_id: str, status: str) -> list[str]:
    from inbetween.usecases.webhook_delivery import subject_event_id
    from inbetween.usecases.webhook_operations import endpoint_of_delivery

    delivery = store.get_webhook_delivery(subject_event_id(subject_id, status))
    if delivery is None:
        return []
    return ["", *describe_delivery(delivery, endpoint_of_delivery(store, delivery))]


def parse_since(raw: str, now: float | None = None) -> float:
    """--since: an ISO 8601 time (2026-12-01T09:30, UTC unless it says otherwise) or an age (90m, 2h, 3d)."""
    from datetime import UTC, datetime

    now = time.time() if now is None else now
    text = raw.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1:].lower() in units and text[:-1].replace(".", "", 1).isdigit():
        return now - float(text[:-1]) * units[text[-1].lower()]
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"--since {raw!r} is not a time: give an ISO 8601 time (2026-12-01T09:30Z) or an age (90m, 2h, 3d)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _subject_of(store: Any, target: Target, ref: str) -> tuple[str, str, str]:
    """(subject id, final status, name) of a JOB reference: a job, or a film run (its film's event)."""
    run = None
    if "/" not in ref or store.get_job(ref) is None:
        run = find_film_run(store, ref)
    if run is not None:
        return run.run_id, run.status.value, run.film
    job = find_job(target, ref)
    return job.job_id, job.status.value, job.job_name


def cmd_webhook_replay(args: argparse.Namespace) -> int:
    from inbetween.usecases import webhook_operations
    from inbetween.usecases.webhook_delivery import subject_event_id

    if (args.job is None) == (args.since is None):
        raise CliError("give a JOB, or --since TIME (with --failed: only deliveries that failed)")
    if args.failed and args.job is not None:
        raise CliError("--failed goes with --since TIME; a JOB's delivery is replayed whatever its state")
    target = resolve_target(args)
    store = target.store()
    now = time.time()
    if args.job is not None:
        subject_id, status, name = _subject_of(store, target, args.job)
        delivery = store.get_webhook_delivery(subject_event_id(subject_id, status))
        if delivery is None:
            raise CliError(
                f"{name} ({status}) has no webhook delivery: it is not final yet, had no webhook_url, "
                "or its webhook_events filter left its event out",
                code=1,
            )
        replays = [webhook_operations.replay(store, delivery, now)]
    else:
        since = parse_since(args.since, now)
        replays = webhook_operations.replay_since(store, since, now, failed_only=args.failed)
        if not replays:
            which = "failed deliveries" if args.failed else "deliveries"
            print(f"no {which} since {_fmt_time(since)} on {target.description}")
            return 0
    for replay in replays:
        d = replay.delivery
        print(f"{replay.outcome.value:<26} {d.delivery_id}  {d.job_id}  (was {d.state.value})")
    queued = sum(1 for r in replays if r.outcome is webhook_operations.ReplayOutcome.QUEUED)
    print(
        f"{queued} queued: the poller sends {'it' if queued == 1 else 'them'} within a cycle, with the "
        "original webhook-id (receivers that deduplicate drop what they had), a fresh timestamp and signature"
    )
    return 0


def cmd_webhook_resume(args: argparse.Namespace) -> int:
    from inbetween.usecases import webhook_operations

    if not args.url.startswith(("https://", "http://")):
        raise CliError("URL must be the endpoint's webhook URL, e.g. https://hooks.example.com/inbetween")
    target = resolve_target(args)
    resumed = webhook_operations.resume(target.store(), args.url, time.time())
    if not resumed.was_paused and not resumed.released:
        print(f"{resumed.endpoint} is not paused; nothing waits for it")
        return 0
    state = "resumed" if resumed.was_paused else "not paused; its waiting deliveries restarted"
    print(f"{resumed.endpoint} {state}: {resumed.waiting} waiting deliveries go out oldest first")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    target = resolve_target(args)
    if "/" not in args.job:
        run = find_film_run(target.store(), args.job)
        if run is not None:
            run = follow_film(target, run.film, since=run.created_at, timeout=args.timeout)
            return _film_report(target.store(), run)
    try:
        job = find_job(target, args.job)
        name, since = job.job_name, job.created_at
    except CliError:
        # just dropped (e.g. with aws s3 cp): the folder is still settling, the job comes
        name, since = args.job.split("/")[0], time.time()
    job = follow(target, name, since=since, timeout=args.timeout)
    return _final_report(job)


def cmd_fetch(args: argparse.Namespace) -> int:
    target = resolve_target(args)
    if "/" not in args.job:
        runs = target.store().recent_film_runs(args.job)
        if runs:
            return _fetch_film(target, args, runs)
    job = find_job(target, args.job)
    if job.status.value != "STORED" or not job.video_key:
        detail = f" ({job.error.code}: {job.error.message})" if job.error else ""
        raise CliError(f"job {job.job_id} has no video: it is {job.status.value}{detail}", code=1)
    output = Path(args.output or Path(args.out or ".") / f"{job.job_name}.mp4")
    output.parent.mkdir(parents=True, exist_ok=True)
    target.client("s3").download_file(target.output_bucket, job.video_key, str(output))
    print(f"{output} ({output.stat().st_size} bytes) <- s3://{target.output_bucket}/{job.video_key}")
    return 0


def _fetch_film(target: Target, args: argparse.Namespace, runs: list[Any]) -> int:
    """The newest stored run's film.mp4, poster.jpg and contact-sheet.png, into --out (default: <film>/)."""
    from botocore.exceptions import ClientError

    newest = runs[0]
    if args.output:
        raise CliError(f"{newest.film} is a film (three files): give --out DIR, not -o FILE")
    stored = next((run for run in runs if run.status.value == "STORED" and run.video_key), None)
    if stored is None:
        detail = f" ({newest.error.code}: {newest.error.message})" if newest.error else ""
        raise CliError(
            f"film {newest.film!r} has no stored run: its newest run {newest.run_id} is "
            f"{newest.status.value}{detail}",
            code=1,
        )
    if stored is not newest:
        detail = f" ({newest.error.code})" if newest.error else ""
        print(
            f"note: the newest run {newest.run_id} is {newest.status.value}{detail}; fetching {stored.run_id}"
        )
    out_dir = Path(args.out or newest.film)
    out_dir.mkdir(parents=True, exist_ok=True)
    s3 = target.client("s3")
    for key in _film_files(stored):
        output = out_dir / key.rsplit("/", 1)[-1]
        try:
            s3.download_file(target.output_bucket, key, str(output))
        except ClientError as exc:
            raise CliError(
                f"could not download s3://{target.output_bucket}/{key}: {exc.response['Error'].get('Message', exc)}",
                code=1,
            ) from None
        print(f"{output} ({output.stat().st_size} bytes) <- s3://{target.output_bucket}/{key}")
    return 0


def _answer(job: Any) -> str:
    """What a cancel did to ``job``, in words (its recorded answer; a job still being cancelled: so)."""
    from inbetween.usecases.cancel import CancelAnswer

    if job.cancel_answer:
        return CancelAnswer(job.cancel_answer).explanation
    if job.status.is_final:  # it ended on its own before the cancel reached it
        return CancelAnswer.FINISHED.explanation
    return "being carried out"


def _cancel_settled(job: Any) -> bool:
    """The cancel's outcome is known: the job ended, or it runs on (paid) and the answer says so."""
    return job.status.is_final or job.cancel_answer == "running"


def cmd_cancel(args: argparse.Namespace) -> int:
    """Ask the deployment to cancel a job or a film (the submit function, which holds the provider key,
    carries it out), then report what it did."""
    from inbetween.domain.messages import cancel_message

    target = resolve_target(args)
    store = target.store()
    run = (
        None
        if "/" in args.target and store.get_job(args.target) is not None
        else find_film_run(store, args.target)
    )
    if run is not None:
        if run.status.is_final:
            print(f"film {run.film} is already {run.status.value}: nothing to cancel")
            return 0
        ref, what = run.run_id, f"film {run.film} (run {run.run_id})"
    else:
        job = find_job(target, args.target)
        if job.status.is_final:
            print(f"job {job.job_name} is already {job.status.value}: nothing to cancel")
            return 0
        ref, what = job.job_id, f"job {job.job_name} ({job.job_id})"
    target.client("sqs").send_message(QueueUrl=target.intake_queue_url(), MessageBody=cancel_message(ref))
    print(f"cancel of {what} sent to {target.description}")
    if not args.wait:
        print(f"see what it did with: inbetween status {args.target}")
        return 0
    deadline = time.monotonic() + args.timeout
    while True:
        if run is not None:
            current = store.get_film_run(ref)
            shots = [store.get_job(shot.job_id) for shot in current.shots]
            # the run ends CANCELED right after its last shot, unless a shot runs on (paid): then say so
            running = any(j is not None and not j.status.is_final for j in shots)
            settled = current.status.is_final or (
                current.cancel_requested_at is not None
                and running
                and all(j is None or _cancel_settled(j) for j in shots)
            )
            if settled:
                return _report_film_cancel(current, shots)
        else:
            current = store.get_job(ref)
            if _cancel_settled(current):
                return _report_job_cancel(current)
        if time.monotonic() > deadline:
            raise CliError(
                f"the cancel of {what} was sent but not carried out within {args.timeout:.0f} s; "
                f"see `inbetween status {args.target}`",
                code=1,
            )
        time.sleep(args.poll_s)


def _report_job_cancel(job: Any) -> int:
    state = job.status.value if job.status.is_final else "RUNNING at the provider"
    print(f"{job.job_name}: {state}: {_answer(job)}")
    return 0 if job.status.value == "CANCELED" or job.cancel_answer == "running" else 1


def _report_film_cancel(run: Any, shots: list[Any]) -> int:
    print(f"film {run.film}: {run.status.value}")
    for shot, job in zip(run.shots, shots, strict=True):
        said = (
            f"{job.status.value}: {_answer(job)}" if job is not None else "never made (it was still to come)"
        )
        print(f"  shot {shot.index} ({shot.number}->{shot.last_number}): {said}")
    running = sum(1 for job in shots if job is not None and job.cancel_answer == "running")
    if run.status.value != "CANCELED" and running:
        print(
            f"the film ends CANCELED once its {running} running shot{'s' if running != 1 else ''} have ended"
        )
    return 0


def cmd_webhook_listen(args: argparse.Namespace) -> int:
    from inbetween_local.receiver import WebhookReceiver

    secret = args.secret or os.environ.get("INBETWEEN_WEBHOOK_SECRET")
    if not secret:
        target = resolve_target(args)
        if not target.webhook_secret_arn:
            raise CliError("pass --secret whsec_... (the stack's webhook signing secret)")
        value = target.client("secretsmanager").get_secret_value(SecretId=target.webhook_secret_arn)
        secret = (
            value["SecretString"]
            if value["SecretString"].startswith("whsec_")
            else "whsec_" + value["SecretString"]
        )

    def accepted(event: Any) -> None:
        print("verified  " + event.summary(), flush=True)

    def rejected(msg_id: str, reason: str) -> None:
        print(f"REJECTED  id={msg_id or '-'} 401: {reason}", flush=True)

    with WebhookReceiver(secret, port=args.port, on_event=accepted, on_reject=rejected) as receiver:
        print(f"listening on {receiver.url} (Ctrl-C to stop)", flush=True)
        _wait_for_interrupt()
    return 0


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        # SIGINT too: a shell starts background jobs with SIGINT ignored, and Ctrl-C should still work
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass


def cmd_local_up(args: argparse.Namespace) -> int:
    from inbetween.observability import logger

    from inbetween_local.console import attached

    path = state_file_path(args.state_file)
    if path.exists():
        try:
            endpoint = json.loads(path.read_text()).get("endpoint_url", "")
        except (OSError, ValueError):
            endpoint = ""
        if endpoint and _reachable(endpoint):
            raise CliError(f"a local stack is already running at {endpoint} (state file {path})")
    log_path = Path(args.log_file) if args.log_file else path.with_suffix(".log")
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = log_path.open("w", encoding="utf-8")  # a new stack, a new log
    except OSError as exc:
        raise CliError(f"cannot write the log file {log_path}: {exc}; pass --log-file PATH") from None
    # the functions' JSON records go to the log file from their first one; the terminal gets a line
    # per job event (and, with --verbose, the records too)
    with log_file, attached(logger, log_file, sys.stdout, verbose=args.verbose) as stream:
        return _run_local_stack(args, path, log_path, stream)


def _run_local_stack(args: argparse.Namespace, path: Path, log_path: Path, stream: ConsoleStream) -> int:
    from inbetween_local.receiver import WebhookReceiver
    from inbetween_local.stack import LocalStack, PortInUse, StackOptions

    receiver = None
    parameters = {}
    if args.webhook_receiver:

        def verified(event: Any) -> None:
            data = event.payload.get("data", {})
            subject = str(data.get("job") or data.get("film") or "")
            stream.webhook_received(subject, event.id, verified=True)

        def rejected(msg_id: str, reason: str) -> None:
            stream.webhook_received("", msg_id, verified=False, reason=reason)

        receiver = WebhookReceiver(
            None, port=args.webhook_port, on_event=verified, on_reject=rejected
        ).start()
        parameters["WebhookUrl"] = receiver.url
    options = StackOptions(
        stack_name=args.local_stack_name or DEFAULT_LOCAL_STACK,
        parameters=parameters,
        moto_port=args.port,
        emulator_port=args.emulator_port,
        emulator_pending_s=args.pending_s,
        emulator_running_s=args.running_s,
        poller_period_s=args.poller_period_s,
        log_level=args.log_level,
        push=args.push,
    )
    print("starting the local stack (moto server, DashScope emulator, functions)...", flush=True)
    try:
        stack = LocalStack(options)
        try:
            stack.start()
        except (PortInUse, OSError) as exc:
            raise CliError(f"could not start the local stack: {exc}") from None
        with stack:
            if receiver is not None:
                receiver.set_secret(stack.webhook_secret)
            stack.write_state(path)
            _print_local_guide(stack, path, receiver)
            print(
                f"the functions' JSON logs: {log_path}"
                + ("" if args.verbose else " (--verbose shows them here too)")
                + "\njob events, one line each:",
                flush=True,
            )
            _wait_for_interrupt()
            print("\nstopping...", flush=True)
    finally:
        if receiver is not None:
            receiver.stop()
    return 0


def _print_local_guide(stack: Any, path: Path, receiver: Any) -> None:
    url = stack.moto_url
    inbox = stack.inbox_bucket
    print(
        f"""
inbetween local stack is up (state: {path})
  AWS endpoint (moto):  {url}
  DashScope emulator:   {stack.emulator_url}
  inbox bucket:         s3://{inbox}/inbox/
  output bucket:        s3://{stack.output_bucket}/results/
  jobs table:           {stack.table_name}
  notification topic:   {stack.topic_arn}""",
        flush=True,
    )
    if receiver is not None:
        print(f"  webhook receiver:     {receiver.url} (default webhook of every job)")
    if getattr(stack, "push", None) is not None:
        print(f"  provider events URL:  {stack.push.url} (the emulator pushes task-finished events here)")
    print(
        f"""
Drop a job with the AWS CLI (any credentials work locally):
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
  aws s3 cp first.png s3://{inbox}/inbox/my-shot/first.png --endpoint-url {url}
  aws s3 cp last.png s3://{inbox}/inbox/my-shot/last.png --endpoint-url {url}
  aws s3 ls s3://{stack.output_bucket}/results/ --recursive --endpoint-url {url}

or with this CLI (it finds this stack through the state file):
  inbetween drop first.png last.png --prompt "the ball rolls to the right" --wait
  inbetween jobs
  inbetween fetch my-shot -o my-shot.mp4
  inbetween webhook listen

Ctrl-C stops the stack (all local data is in memory and goes with it).
""",
        flush=True,
    )


# ---------------------------------------------------------------------------------------------- parser
def _bool_flag(parser: argparse.ArgumentParser, name: str, help_text: str) -> None:
    dest = name.replace("-", "_")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(f"--{name}", dest=dest, action="store_true", default=None, help=help_text)
    group.add_argument(f"--no-{name}", dest=dest, action="store_false", help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    target = argparse.ArgumentParser(add_help=False)
    group = target.add_argument_group("target")
    group.add_argument("--stack", help="a deployed stack's name (reads its CloudFormation Outputs)")
    group.add_argument("--region", help="AWS region of the deployed stack")
    group.add_argument("--endpoint-url", help="a local stack's AWS endpoint, e.g. http://127.0.0.1:5000")
    group.add_argument("--state-file", help="the local stack's state file (default: .inbetween-local.json)")
    group.add_argument("--local-stack-name", help=argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog="inbetween", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    local = sub.add_parser("local", help="the local stack").add_subparsers(
        dest="local_command", required=True
    )
    up = local.add_parser("up", help="run the whole pipeline on this machine until Ctrl-C")
    up.add_argument("--port", type=int, default=0, help="moto (AWS endpoint) port; default: any free port")
    up.add_argument("--emulator-port", type=int, default=0, help="DashScope emulator port")
    up.add_argument("--pending-s", type=float, default=0.5, help="emulated provider: seconds PENDING")
    up.add_argument("--running-s", type=float, default=2.0, help="emulated provider: seconds RUNNING")
    up.add_argument("--poller-period-s", type=float, default=2.0, help="poller schedule (1 minute on AWS)")
    up.add_argument(
        "--webhook-receiver",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start a local webhook receiver and make it every job's default webhook",
    )
    up.add_argument("--webhook-port", type=int, default=0)
    up.add_argument(
        "--push",
        action="store_true",
        help="provider push on: the emulator sends task-finished events to the provider events function",
    )
    up.add_argument("--log-level", default="INFO", help="the functions' log level (the job lines need INFO)")
    up.add_argument(
        "--log-file",
        help="where the functions' JSON logs go (default: the state file's name with .log, "
        ".inbetween-local.log; started afresh with each stack)",
    )
    up.add_argument(
        "--verbose", action="store_true", help="print the functions' JSON logs too, not only the job lines"
    )
    up.add_argument("--state-file", help=argparse.SUPPRESS)
    up.add_argument("--local-stack-name", help=argparse.SUPPRESS)
    up.set_defaults(func=cmd_local_up)

    drop = sub.add_parser("drop", parents=[target], help="upload keyframes (and audio, a clip) as a job")
    drop.add_argument("first", metavar="FIRST", nargs="?", help="first frame (png, jpg, webp, bmp)")
    drop.add_argument(
        "last",
        metavar="LAST",
        nargs="?",
        help="last frame (kf2v needs it unless --template; wan2.7-i2v can go without)",
    )
    drop.add_argument("--job", help="job (folder) name; default: FIRST's name and the time")
    drop.add_argument("--prompt")
    drop.add_argument("--negative-prompt")
    drop.add_argument(
        "--model", help="wan2.7-i2v, wan2.2-kf2v-flash or wanx2.1-kf2v-plus; default: the deployment's"
    )
    drop.add_argument("--resolution", help="720P or 1080P (wan2.7-i2v); 480P, 720P or 1080P (kf2v flash)")
    drop.add_argument("--duration", type=int, help="seconds, 2 to 15 (wan2.7-i2v; kf2v makes 5)")
    drop.add_argument("--audio", help="driving audio, wav or mp3, 2 to 30 s (wan2.7-i2v)")
    drop.add_argument("--first-clip", help="a clip to continue, mp4 or mov, 2 to 10 s (wan2.7-i2v)")
    drop.add_argument("--seed", type=int)
    drop.add_argument("--template", help="an effect template (wanx2.1-kf2v-plus)")
    _bool_flag(drop, "watermark", "add the provider's watermark (--no-watermark: without)")
    _bool_flag(drop, "prompt-extend", "let the provider rewrite the prompt (--no-prompt-extend: don't)")
    drop.add_argument("--webhook-url")
    drop.add_argument(
        "--webhook-events", help="event types the webhook gets, comma-separated (video.generation.*)"
    )
    drop.add_argument("--wait", action="store_true", help="follow the job to the end")
    drop.add_argument("--timeout", type=float, default=900.0, help="seconds --wait waits")
    drop.set_defaults(func=cmd_drop)

    drop_film = sub.add_parser(
        "drop-film", parents=[target], help="upload a storyboard folder (numbered keyframes) as a film"
    )
    drop_film.add_argument(
        "folder",
        metavar="FOLDER",
        help="01.png, 02.png, ... (a shot per pair), optional film.json and 01.txt",
    )
    drop_film.add_argument("--name", help="film (folder) name; default: FOLDER's name")
    drop_film.add_argument("--wait", action="store_true", help="follow the film to the end")
    drop_film.add_argument("--timeout", type=float, default=1800.0, help="seconds --wait waits")
    drop_film.set_defaults(func=cmd_drop_film)

    jobs = sub.add_parser("jobs", parents=[target], help="recent jobs and films, and their states")
    jobs.add_argument("--limit", type=int, default=20)
    jobs.set_defaults(func=cmd_jobs)

    status = sub.add_parser("status", parents=[target], help="one job or film (its latest run)")
    status.add_argument("job", metavar="JOB", help="job name or job id; film name or film run id")
    status.set_defaults(func=cmd_status)

    watch = sub.add_parser("watch", parents=[target], help="follow a job or a film until it is final")
    watch.add_argument("job", metavar="JOB", help="job name or job id; film name")
    watch.add_argument("--timeout", type=float, default=900.0)
    watch.set_defaults(func=cmd_watch)

    fetch = sub.add_parser("fetch", parents=[target], help="download a job's video, or a film's")
    fetch.add_argument("job", metavar="JOB", help="job name or job id; film name")
    output = fetch.add_mutually_exclusive_group()
    output.add_argument("-o", "--output", help="a job's file to write (default: <job>.mp4)")
    output.add_argument(
        "--out",
        metavar="DIR",
        help="folder to write into (a film: film.mp4, poster.jpg, contact-sheet.png; default: <film>/)",
    )
    fetch.set_defaults(func=cmd_fetch)

    cancel = sub.add_parser(
        "cancel",
        parents=[target],
        help="cancel a job or a film: withdraw what waits, cancel tasks still PENDING (a RUNNING one is paid)",
    )
    cancel.add_argument("target", metavar="JOB|FILM", help="job name or job id; film name or film run id")
    cancel.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait for the deployment's answer (--no-wait: send the request and return)",
    )
    cancel.add_argument("--timeout", type=float, default=60.0, help="seconds --wait waits")
    cancel.add_argument("--poll-s", type=float, default=0.5, help=argparse.SUPPRESS)
    cancel.set_defaults(func=cmd_cancel)

    webhook = sub.add_parser("webhook", help="webhooks").add_subparsers(dest="webhook_command", required=True)
    listen = webhook.add_parser("listen", parents=[target], help="verify and print signed webhooks")
    listen.add_argument("--secret", help="whsec_... (default: the target stack's signing secret)")
    listen.add_argument("--port", type=int, default=0)
    listen.set_defaults(func=cmd_webhook_listen)
    replay = webhook.add_parser(
        "replay",
        parents=[target],
        help="deliver webhooks again, with their original webhook-id (receivers deduplicate)",
    )
    replay.add_argument("job", metavar="JOB", nargs="?", help="job name or job id; film name or run id")
    replay.add_argument(
        "--since", metavar="TIME", help="every delivery since TIME (2026-12-01T09:30Z, 2h, 3d)"
    )
    replay.add_argument("--failed", action="store_true", help="with --since: only those that failed")
    replay.set_defaults(func=cmd_webhook_replay)
    resume = webhook.add_parser(
        "resume", parents=[target], help="resume a paused endpoint: its waiting deliveries go out in order"
    )
    resume.add_argument("url", metavar="URL", help="the endpoint's webhook URL (its query does not matter)")
    resume.set_defaults(func=cmd_webhook_resume)

    add_budget_parsers(sub, target)
    return parser


def main(argv: list[str] | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"inbetween: {exc}", file=sys.stderr)
        return exc.code
    except ClientError as exc:
        error = exc.response.get("Error", {})
        print(f"inbetween: AWS said {error.get('Code')}: {error.get('Message')}", file=sys.stderr)
        return 1
    except BotoCoreError as exc:
        print(f"inbetween: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
