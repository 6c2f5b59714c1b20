"""Cold start: each handler module's import time as a ratio of ``import boto3`` alone (fresh interpreters,
interleaved, median of N); each function's whole cold path (the import, ``get_deps()`` building its
clients, and the first secret read, against moto on loopback) as a ratio of the same; and the Lambda
layer's unzipped size as ``sam build`` makes it for the template's layer (its BuildMethod and
BuildArchitecture are read from template.yaml). Every function of the template is measured, on the paths
Lambda gives it: its code, its layers in order (the media layer's PyAV and inbetween_media for those that
list it), the runtime's boto3. The media layer's own size is bench/stitch.py's figure."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bench.common import ROOT, Figure, at_most, fake_aws_env, median

IMPORT_GOAL = 2.0  # our code may at most double what boto3 alone costs (Lambda's runtime brings boto3)
# the whole cold path may add at most one more boto3's worth: the clients and the secret read
COLD_PATH_GOAL = 3.0
MEDIA_LAYER_RESOURCE = "MediaLayer"
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

# A first invocation's cold path, in its parts: the handler's import, get_deps() (every client it builds),
# then the API key's read from Secrets Manager (the first provider call makes it). The read goes through
# a SecretReader on a client of its own, one client more than the real path builds (~20 ms): errs high.
_COLD_PATH_PROBE = """
import importlib.util, json, os, sys, time
paths = sys.argv[1:]
sys.path[:0] = paths
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", paths[-1] + "/app.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
imported = time.perf_counter()
from inbetween.wiring import get_deps
get_deps()
built = time.perf_counter()
import boto3
from inbetween.aws.secrets import SecretReader
key = SecretReader(boto3.client("secretsmanager")).get(os.environ["DASHSCOPE_API_KEY_SECRET"])
read = time.perf_counter()
assert key
print(json.dumps({"import": imported - started, "get_deps": built - imported, "secret_read": read - built}))
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
    """Reads template.yaml; an intrinsic function (!Ref, !GetAtt, ...) loads as its plain argument
    (``!Ref MediaLayer`` as ``"MediaLayer"``, ``!GetAtt IntakeQueue.Arn`` as ``"IntakeQueue.Arn"``)."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return None


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def template() -> dict[str, Any]:
    return dict(yaml.load((ROOT / "template.yaml").read_text(), Loader=_CloudFormationLoader))  # noqa: S506


def function_layers() -> dict[str, list[str]]:
    """Each function's directory under functions/ and its layers in Lambda's order (Globals' first, as SAM
    merges them)."""
    tpl = template()
    common = list(tpl.get("Globals", {}).get("Function", {}).get("Layers") or [])
    out = {}
    for res in tpl["Resources"].values():
        if res["Type"] == "AWS::Serverless::Function":
            props = res["Properties"]
            name = str(props["CodeUri"]).rstrip("/").rsplit("/", 1)[-1]
            out[name] = [*common, *(props.get("Layers") or [])]
    return out


def layer_build() -> tuple[str, str, Path]:
    """(BuildMethod, architecture, ContentUri) of the template's layer: what `sam build` builds from."""
    layer = template()["Resources"][LAYER_RESOURCE]
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


def function_paths(name: str, runtime: Path, layer: Path, media: Path) -> list[Path]:
    """Lambda's order: the layers (each one's packages, then its own source), the runtime, the code."""
    paths = [layer, ROOT / "shared"]
    if MEDIA_LAYER_RESOURCE in function_layers()[name]:
        paths += [media, ROOT / "media"]
    return [*paths, runtime, ROOT / "functions" / name]


def import_times(repeats: int, runtime: Path, layer: Path, media: Path) -> list[Figure]:
    path_sets = {"boto3": [runtime]}
    handlers = list(function_layers())
    for name in handlers:
        path_sets[name] = function_paths(name, runtime, layer, media)
    samples: dict[str, list[float]] = {name: [] for name in path_sets}
    for name, paths in path_sets.items():  # warm the OS file cache and write bytecode once
        _import_seconds(name, paths)
    for _ in range(repeats):
        for name, paths in path_sets.items():  # interleaved, so drift in machine load hits all alike
            samples[name].append(_import_seconds(name, paths))
    boto3_s = median(samples["boto3"])
    figures = []
    for name in handlers:
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
                    + " (as Lambda's runtime), the layers ("
                    + ", ".join(function_layers()[name])
                    + "), the function",
                },
                detail={
                    "median_ms": round(median(samples[name]) * 1000, 1),
                    "boto3_median_ms": round(boto3_s * 1000, 1),
                },  # fmt: skip
            )
        )
    return figures


def _cold_path(paths: list[Path], env: dict[str, str]) -> dict[str, float]:
    args = [sys.executable, "-S", "-c", _COLD_PATH_PROBE, *map(str, paths)]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True, cwd=tempfile.gettempdir(),
                         timeout=120)  # fmt: skip
    return {k: float(v) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def cold_paths(repeats: int, runtime: Path, layer: Path, media: Path, boto3_ms: float) -> list[Figure]:
    """Each function's first invocation up to its first provider request, in fresh interpreters against
    moto server on loopback (the template's resources, its secrets), median of ``repeats``."""
    import boto3

    from bench.common import MotoServer, create_resources

    handlers = list(function_layers())
    with MotoServer() as endpoint:
        before = os.environ.get("AWS_ENDPOINT_URL")
        os.environ["AWS_ENDPOINT_URL"] = endpoint  # botocore reads it for each client it makes
        try:
            session = boto3.session.Session(region_name="us-east-1", aws_access_key_id="testing",
                                            aws_secret_access_key="testing")  # fmt: skip
            names = create_resources(session, "cold")
        finally:
            if before is None:
                os.environ.pop("AWS_ENDPOINT_URL", None)
            else:
                os.environ["AWS_ENDPOINT_URL"] = before
        env = dict(os.environ, **fake_aws_env(), **names, AWS_ENDPOINT_URL=endpoint, PYTHONDONTWRITEBYTECODE="1",
                   POWERTOOLS_METRICS_NAMESPACE="Inbetween", PROVIDER_BASE_URL="http://127.0.0.1:9/api/v1")  # fmt: skip
        env.pop("PYTHONPATH", None)
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in handlers}
        for name in handlers:  # warm the OS file cache
            _cold_path(function_paths(name, runtime, layer, media), env)
        for _ in range(repeats):
            for name in handlers:
                samples[name].append(_cold_path(function_paths(name, runtime, layer, media), env))
    figures = []
    for name in handlers:
        totals = [sum(s.values()) for s in samples[name]]
        parts = {part: round(median([s[part] for s in samples[name]]) * 1000, 1) for part in samples[name][0]}
        ratio = median(totals) * 1000 / boto3_ms
        figures.append(
            Figure(
                key=f"cold_start.cold_path.{name}",
                name=f"Cold path of functions/{name} (import, get_deps, secret read)",
                value=round(ratio, 2),
                unit="x import boto3",
                goal=f"<= {COLD_PATH_GOAL}",
                passed=at_most(ratio, COLD_PATH_GOAL),
                baseline=f"{median(totals) * 1000:.0f} ms: "
                + ", ".join(f"{k} {v:g} ms" for k, v in parts.items())
                + f"; import boto3 alone {boto3_ms:.0f} ms",
                settings={"repeats": repeats, "aws": "moto server on loopback (a call costs a few ms)"},
                detail={"median_ms": parts, "total_ms": round(median(totals) * 1000, 1)},
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
        media = Path(tmp) / "media"
        try:
            _install(runtime, [f"boto3=={_locked_version('boto3')}"], lambda_arch=None)
            _install(layer, requirements, lambda_arch=None)
            _install(media, ["-r", str(ROOT / "media" / "requirements.txt")], lambda_arch=None)
        except (subprocess.SubprocessError, OSError) as exc:
            why = f"could not install the layer's packages ({str(getattr(exc, 'stderr', '') or exc)[-160:]})"
            figures = [
                _not_measured(f"cold_start.import.{n}", f"Cold start: import of functions/{n}/app.py",
                              "x import boto3", f"<= {IMPORT_GOAL}", why)
                for n in function_layers()
            ]  # fmt: skip
            return [*figures, _not_measured("cold_start.layer_size", "Lambda layer, unzipped", "MB",
                                            f"<= {LAYER_GOAL_MB}", why)]  # fmt: skip
        figures = import_times(1 if quick else 9, runtime, layer, media)
        boto3_ms = figures[0].detail["boto3_median_ms"]
        try:
            figures += cold_paths(1 if quick else 7, runtime, layer, media, boto3_ms)
        except (subprocess.SubprocessError, OSError, KeyError, ValueError) as exc:
            figures += [
                _not_measured(f"cold_start.cold_path.{n}", f"Cold path of functions/{n}", "x import boto3",
                              f"<= {COLD_PATH_GOAL}", str(getattr(exc, "stderr", "") or exc)[-200:])
                for n in function_layers()
            ]  # fmt: skip
        try:
            figures.append(layer_size(sam_layer))
        except (subprocess.SubprocessError, OSError, KeyError, ValueError) as exc:
            figures.append(_not_measured("cold_start.layer_size", "Lambda layer, unzipped", "MB",
                                         f"<= {LAYER_GOAL_MB}", str(getattr(exc, "stderr", "") or exc)[-160:]))  # fmt: skip
    return figures


if __name__ == "__main__":
    print(json.dumps([f.to_dict() for f in run(quick=True)], indent=2))
