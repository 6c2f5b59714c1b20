"""The layout's promises that a test can hold: the use cases and the domain load no SDK (they speak to the
ports), and every use-case module has its unit test file (tests/unit/usecases/test_<module>.py)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
USECASES = ROOT / "shared" / "inbetween" / "usecases"
DOMAIN = ROOT / "shared" / "inbetween" / "domain"
UNIT_USECASES = Path(__file__).resolve().parent / "usecases"
# what a use case or the domain must never load, even indirectly: the HTTP client, the AWS SDK, moto, and
# our own adapters and wiring that use them
FORBIDDEN = ("httpx", "httpcore", "boto3", "moto", "inbetween.aws", "inbetween.wiring")

# test_<module>.py, unless that basename is taken elsewhere in tests/ (pytest's default import mode needs
# unique basenames where there are no __init__.py files)
TEST_FILE_NAMES = {
    "webhook_delivery": "test_webhook_deliveries.py"
}  # tests/integration/test_webhook_delivery.py

PROBE = """
import importlib, json, pkgutil, sys
import inbetween.domain, inbetween.usecases
loaded = []
for package in (inbetween.usecases, inbetween.domain):
    for info in pkgutil.iter_modules(package.__path__):
        loaded.append(importlib.import_module(f"{package.__name__}.{info.name}").__name__)
print(json.dumps({"loaded": loaded, "modules": sorted(sys.modules)}))
"""


def _modules(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}


def test_the_use_cases_and_the_domain_load_neither_httpx_nor_boto3():
    # Given a fresh interpreter (this one has loaded everything the other tests needed)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(ROOT / p) for p in ("shared", "local")))
    # When it imports every use-case and domain module
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # Then it imported them all, and nothing forbidden came with them
    expected = {f"inbetween.usecases.{m}" for m in _modules(USECASES)} | {
        f"inbetween.domain.{m}" for m in _modules(DOMAIN)
    }
    assert set(report["loaded"]) == expected
    leaked = [m for m in report["modules"] if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert leaked == []


def _imported_usecases(path: Path) -> set[str]:
    """The use-case modules a test file imports (``from inbetween.usecases import x`` or ``.x import ...``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "inbetween.usecases":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("inbetween.usecases."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("inbetween.usecases.")}
    return found


def test_every_use_case_module_has_its_unit_test_file():
    modules = _modules(USECASES)
    assert {"intake", "admission", "task_checks", "finishing"} <= modules  # the folder is the right one
    files = {m: UNIT_USECASES / TEST_FILE_NAMES.get(m, f"test_{m}.py") for m in modules}
    missing = sorted(str(path.relative_to(ROOT)) for path in files.values() if not path.exists())
    assert missing == []
    # and each one tests its module (not merely carries its name)
    not_importing = sorted(m for m, path in files.items() if m not in _imported_usecases(path))
    assert not_importing == []
    # an exception to the naming is only for a basename taken elsewhere
    for module in TEST_FILE_NAMES:
        assert module in modules
        assert list(ROOT.joinpath("tests").rglob(f"test_{module}.py")), f"test_{module}.py is free: use it"
