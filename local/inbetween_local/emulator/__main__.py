"""``python -m inbetween_local.emulator --port 8089 --api-key sk-local``: run the emulator until Ctrl-C."""

from __future__ import annotations

import argparse
import threading

from inbetween.domain.catalog import IMAGE_LIMITS, STRICT_IMAGE_LIMITS

from .config import ConcurrencyMode, Duration, EmulatorConfig, ErrorTiming, Faults, MediaRule
from .server import EmulatorServer


def _duration(text: str) -> Duration:
    """ "2" or a range "60-180" drawn with the seeded RNG."""
    low, sep, high = text.partition("-")
    return (float(low), float(high)) if sep else float(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m inbetween_local.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--api-key", action="append", dest="api_keys", help="valid key (repeatable)")
    parser.add_argument("--pending-s", type=_duration, default=0.5, help="seconds or LOW-HIGH")
    parser.add_argument("--running-s", type=_duration, default=2.0, help="seconds or LOW-HIGH")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency-mode", choices=[m.value for m in ConcurrencyMode], default="reject")
    parser.add_argument("--no-rate-limits", action="store_true")
    parser.add_argument("--strict-image-limits", action="store_true", help="sides in [360, 2000]")
    parser.add_argument("--image-errors", choices=[t.value for t in ErrorTiming], default="sync")
    parser.add_argument("--download-errors", choices=[t.value for t in ErrorTiming], default="async")
    parser.add_argument("--allow-remote-fetch", action="store_true", help="fetch frames from the internet")
    parser.add_argument("--media-data-uris", action="store_true", help="wan2.7: accept base64 audio/clips")
    parser.add_argument(
        "--media-errors",
        choices=[t.value for t in ErrorTiming],
        default=None,
        help="wan2.7: answer every refusal at create (sync) or as a FAILED task (async)",
    )
    parser.add_argument("--task-ttl-s", type=float, default=24 * 3600.0)
    parser.add_argument("--video-url-ttl-s", type=float, default=24 * 3600.0)
    args = parser.parse_args(argv)

    config = EmulatorConfig(
        host=args.host,
        port=args.port,
        api_keys=tuple(args.api_keys or ["sk-local"]),
        pending_s=args.pending_s,
        running_s=args.running_s,
        time_scale=args.time_scale,
        seed=args.seed,
        image_limits=STRICT_IMAGE_LIMITS if args.strict_image_limits else IMAGE_LIMITS,
        image_errors=ErrorTiming(args.image_errors),
        download_errors=ErrorTiming(args.download_errors),
        allow_remote_fetch=args.allow_remote_fetch,
        media_data_uris=args.media_data_uris,
        media_error_timing={rule: ErrorTiming(args.media_errors) for rule in MediaRule}
        if args.media_errors
        else {},
        task_ttl_s=args.task_ttl_s,
        video_url_ttl_s=args.video_url_ttl_s,
        faults=Faults(
            concurrency_mode=ConcurrencyMode(args.concurrency_mode),
            rate_limits_enabled=not args.no_rate_limits,
            seed=args.seed,
        ),
    )
    with EmulatorServer(config) as emulator:
        print(emulator.base_url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
