"""``make bench``: every figure measured side by side with its baseline in the same run (see run.py)."""

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
for _path in (_ROOT / "local", _ROOT / "shared"):  # as pytest's pythonpath does
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
