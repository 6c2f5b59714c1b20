"""``make bench``: every figure measured side by side with its baseline in the same run (see run.py)."""

import os
import sys
from pathlib import Path

# before anything imports Powertools (this package is imported before any of its modules): no metric
# lines on stdout, quiet logs, as the local stack does
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Inbetween")

_ROOT = Path(__file__).resolve().parents[1]
# BENCH_CODE_ROOT: measure another checkout's shared/ and functions/ (e.g. a `git archive` of a commit)
_CODE = Path(os.environ.get("BENCH_CODE_ROOT") or _ROOT)
# media/: the layer the completion function has too (every clip's poster and contact sheet)
for _path in (_ROOT / "local", _CODE / "media", _CODE / "shared"):  # as pytest's pythonpath does
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
