"""Cold start: each handler module's import time as a ratio of ``import boto3`` alone (fresh interpreters,
interleaved, median of N), and the Lambda layer's unzipped size as ``sam build`` makes it for the
template's layer (its BuildMethod and BuildArchitecture are read from template.yaml)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from bench.common import ROOT, Figure, at_most, fake_aws_env, median

HANDLERS = ("submit", "poller", "completion")
IMPORT_GOAL = 2.0  # our code may at most double what boto3 alone costs (Lambda's runtime brings boto3)
LAYER_GOAL_MB = 25.0
LAYER_RESOURCE = "InbetweenLayer"
# What `sam build` (aws-lambda-builders' python_pip workflow) leaves out when it copies the layer's ContentUri
# next to the installed wheels (the entries of its EXCLUDED_FILES that can occur under shared/).
SAM_EXCLUDED = (
    "__pycache__",
    "*.pyc",
    "*.so",
    "*.egg-info",
    "*.egg",
    ".pytest_cache",
    ".mypy_cache",
    ".venv",
)

_PROBE = """
import importlib.util, sys, time
target, paths = sys.argv[1], sys.argv[2:]
sys.path[:0] = paths
started = time.perf_counter()
if target == "boto3":
    import boto3  # noqa: F401
else:
    spec = importlib.util.spec_from_file_location("app", paths[-1] + "/app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
print(time.perf_counter() - started)
"""


def _installer() -> list[str] | None:
    uv = ROOT / ".tools" / "bin" / "uv"
    if uv.exists():
        return [str(uv), "pip", "install", "--quiet", "--no-build"]
    pip = shutil.which("pip3") or shutil.which("pip")
    return [pip, "install", "--quiet", "--only-binary=:all:"] if pip else None


def _install(target: Path, requirements: list[str], *, lambda_arch: str | None) -> None:
    """pip install --target; with ``lambda_arch`` ("x86_64" or "arm64"), the wheels `sam build` picks for
    python3.12 on that architecture (it accepts manylinux tags up to manylinux_2_34: Lambda's glibc 2.34)."""
    cmd = _installer()
    if cmd is None:
        raise FileNotFoundError("neither .tools/bin/uv nor pip is available")
    uv = cmd[0].endswith("uv")
    if lambda_arch:
        machine = {"arm64": "aarch64", "x86_64": "x86_64"}[lambda_arch]
        if uv:
            cmd += ["--python-platform", f"{machine}-manylinux_2_34", "--python-version", "3.12"]
        else:  # pip does not widen a manylinux_2_34 tag to older ones: name each, as SAM does
            tags = ("manylinux2014", "manylinux_2_28", "manylinux_2_34")
            cmd += [arg for tag in tags for arg in ("--platform", f"{tag}_{machine}")]
            cmd += [
                "--python-version",
                "3.12",
                "--implementation",
                "cp",
                "--no-compile",
            ]  # SAM writes no .pyc
    elif uv:
        cmd += ["--python", sys.executable]
    subprocess.run([*cmd, "--target", str(target), *requirements], check=True, capture_output=True, text=True,
                   timeout=600)  # fmt: skip


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads template.yaml; the intrinsic functions (!Ref, !Sub, ...) are not needed here and load as None."""


_CloudFormationLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def layer_build() -> tuple[str, str, Path]:
    """(BuildMethod, architecture, ContentUri) of the template's layer: what `sam build` builds from."""
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_CloudFormationLoader)  # noqa: S506
    layer = template["Resources"][LAYER_RESOURCE]
    metadata = layer.get("Metadata", {})
    return (
        metadata["BuildMethod"],
        metadata.get("BuildArchitecture", "x86_64"),
        ROOT / layer["Properties"]["ContentUri"],
    )


def build_layer(artifacts: Path) -> tuple[str, str]:
    """Build the layer into ``artifacts`` as `sam build` would; returns (build method, architecture).

    BuildMethod python3.12: the requirements' wheels for the architecture, then a copy of ContentUri (minus
    SAM's exclusions), all under python/. BuildMethod makefile: SAM's own step, ``make build-<Layer>`` with
    ARTIFACTS_DIR set, run here on a copy of ContentUri just as SAM runs it on one.
    """
    method, arch, content = layer_build()
    if method == "makefile":
        make = shutil.which("make")
        if make is None:
            raise FileNotFoundError("make is not available")
        with tempfile.TemporaryDirectory(prefix="bench-layer-src-") as scratch:
            source = Path(scratch) / "source"
            shutil.copytree(content, source, ignore=shutil.ignore_patterns(*SAM_EXCLUDED))
            env = dict(os.environ, ARTIFACTS_DIR=str(artifacts))
            subprocess.run([make, "-f", "Makefile", f"build-{LAYER_RESOURCE}"], cwd=source, env=env, check=True,
                           capture_output=True, text=True, timeout=600)  # fmt: skip
        return method, arch
    if not method.startswith("python"):
        raise ValueError(f"the layer's BuildMethod {method!r} is not one this bench knows how to build")
    site = artifacts / "python"
    _install(site, ["-r", str(content / "requirements.txt")], lambda_arch=arch)
    shutil.copytree(content, site, ignore=shutil.ignore_patterns(*SAM_EXCLUDED), dirs_exist_ok=True)
    return method, arch


def _locked_version(name: str) -> str:
    lock = (ROOT / "uv.lock").read_text()
    found = re.search(rf'name = "{re.escape(name)}"\nversion = "([^"]+)"', lock)
    return found.group(1) if found else ""


def _import_seconds(target: str, paths: list[Path]) -> float:
    env = dict(
        os.environ, **fake_aws_env(), POWERTOOLS_METRICS_NAMESPACE="Inbetween", PYTHONDONTWRITEBYTECODE="1"
    )
    env.pop("PYTHONPATH", None)
    # -S: no site-packages at all; only the Lambda-like paths below (runtime boto3, layer, function)
    args = [sys.executable, "-S", "-c", _PROBE, target, *map(str, paths)]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    return float(out.stdout.strip().splitlines()[-1])


def import_times(repeats: int, runtime: Path, layer: Path) -> list[Figure]:
    path_sets = {"boto3": [runtime]}
    for name in HANDLERS:
        path_sets[name] = [layer, ROOT / "shared", runtime, ROOT / "functions" / name]
    samples: dict[str, list[float]] = {name: [] for name in path_sets}
    for name, paths in path_sets.items():  # warm the OS file cache and write bytecode once
        _import_seconds(name, paths)
    for _ in range(repeats):
        for name, paths in path_sets.items():  # interleaved, so drift in machine load hits all alike
            samples[name].append(_import_seconds(name, paths))
    boto3_s = median(samples["boto3"])
    figures = []
    for name in HANDLERS:
        ratio = median(samples[name]) / boto3_s
        figures.append(
            Figure(
                key=f"cold_start.import.{name}",
                name=f"Cold start: import of functions/{name}/app.py",
                value=round(ratio, 2),
                unit="x import boto3",
                goal=f"<= {IMPORT_GOAL}",
                passed=at_most(ratio, IMPORT_GOAL),
                baseline=f"import boto3 alone: {boto3_s * 1000:.0f} ms (median of {repeats})",
                settings={
                    "repeats": repeats,
                    "python": sys.version.split()[0],
                    "paths": "python -S; boto3 "
                    + _locked_version("boto3")
                    + " (as Lambda's runtime), the layer, "
                    "shared/, the function",
                },
                detail={
                    "median_ms": round(median(samples[name]) * 1000, 1),
                    "boto3_median_ms": round(boto3_s * 1000, 1),
                },  # fmt: skip
            )
        )
    return figures


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def layer_size(artifacts: Path) -> Figure:
    """The layer as `sam build` makes it (see ``build_layer``), measured unzipped."""
    method, arch = build_layer(artifacts)
    site = artifacts / "python"
    total = _tree_bytes(artifacts)
    biggest = sorted(
        ((p.name, _tree_bytes(p) if p.is_dir() else p.stat().st_size) for p in site.iterdir()),
        key=lambda kv: -kv[1],
    )[:6]
    mb = total / 1e6
    return Figure(
        key="cold_start.layer_size",
        name="Lambda layer, unzipped",
        value=round(mb, 1),
        unit="MB",
        goal=f"<= {LAYER_GOAL_MB}",
        passed=at_most(mb, LAYER_GOAL_MB),
        baseline="Lambda's limit for all layers + function code: 250 MB",
        settings={
            "build": f"template.yaml {LAYER_RESOURCE}: BuildMethod {method}, {arch}",
            "wheels": "cp312, manylinux up to 2_34"
            if method != "makefile"
            else "as the Makefile's target picks",
            "pillow": _locked_version("pillow"),
        },
        detail={"largest_MB": {name: round(size / 1e6, 2) for name, size in biggest}},
    )


def _not_measured(key: str, name: str, unit: str, goal: str, why: str) -> Figure:
    return Figure(
        key=key, name=name, value=None, unit=unit, goal=goal, passed=None, note="not measured: " + why
    )


def run(quick: bool = False) -> list[Figure]:
    requirements = ["-r", str(ROOT / "shared" / "requirements.txt")]
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        runtime, layer, sam_layer = Path(tmp) / "runtime", Path(tmp) / "layer", Path(tmp) / "sam-layer"
        try:
            _install(runtime, [f"boto3=={_locked_version('boto3')}"], lambda_arch=None)
            _install(layer, requirements, lambda_arch=None)
        except (subprocess.SubprocessError, OSError) as exc:
            why = f"could not install the layer's packages ({str(getattr(exc, 'stderr', '') or exc)[-160:]})"
            figures = [
                _not_measured(f"cold_start.import.{n}", f"Cold start: import of functions/{n}/app.py",
                              "x import boto3", f"<= {IMPORT_GOAL}", why)
                for n in HANDLERS
            ]  # fmt: skip
            return [*figures, _not_measured("cold_start.layer_size", "Lambda layer, unzipped", "MB",
                                            f"<= {LAYER_GOAL_MB}", why)]  # fmt: skip
        figures = import_times(3 if quick else 9, runtime, layer)
        try:
            figures.append(layer_size(sam_layer))
        except (subprocess.SubprocessError, OSError, KeyError, ValueError) as exc:
            figures.append(_not_measured("cold_start.layer_size", "Lambda layer, unzipped", "MB",
                                         f"<= {LAYER_GOAL_MB}", str(getattr(exc, "stderr", "") or exc)[-160:]))  # fmt: skip
    return figures


if __name__ == "__main__":
    print(json.dumps([f.to_dict() for f in run(quick=True)], indent=2))
