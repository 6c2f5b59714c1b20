"""template.yaml as the local stack's single source of truth: parameters, conditions, intrinsics, resources.

``LocalTemplate`` reads the SAM template with cfn-lint's decoder and resolves the intrinsic functions this
template uses (Ref, Fn::GetAtt, Fn::Sub, Fn::If, Fn::Join, Fn::Select, Fn::Split, Fn::Equals, Fn::Not,
Fn::And, Fn::Or, Condition) against *physical* attributes supplied by the caller. Physical names follow
CloudFormation where the template names a resource (``BucketName``) and ``<stack>-<LogicalId>`` where
CloudFormation would generate one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str

ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "us-east-1"
PARTITION = "aws"
NO_VALUE = object()  # AWS::NoValue: the property or list element disappears

REPO_ROOT = Path(__file__).resolve().parents[3]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"

_SUB_VAR = re.compile(r"\$\{([^}]+)\}")


class TemplateError(RuntimeError):
    pass


def _plain(value: Any) -> Any:
    """cfn-lint's node classes -> plain dict/list/str (keeps YAML scalars as they are)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


@dataclass(frozen=True, slots=True)
class SqsEventSource:
    name: str
    queue_logical_id: str
    batch_size: int
    report_batch_item_failures: bool
    maximum_batching_window_s: int = 0


@dataclass(frozen=True, slots=True)
class ScheduleEvent:
    name: str
    expression: str


@dataclass(frozen=True, slots=True)
class FunctionDef:
    logical_id: str
    code_uri: str
    handler: str
    timeout_s: int
    memory_mb: int
    environment: dict[str, Any]  # unresolved values (intrinsics)
    sqs_sources: tuple[SqsEventSource, ...] = ()
    schedules: tuple[ScheduleEvent, ...] = ()
    # the folders of the template's own layers (their ContentUri) that the function gets, in order
    layer_paths: tuple[Path, ...] = ()

    @property
    def module_path(self) -> Path:
        module, _, _ = self.handler.rpartition(".")
        return REPO_ROOT / self.code_uri / (module.replace(".", "/") + ".py")

    @property
    def handler_name(self) -> str:
        return self.handler.rpartition(".")[2]


@dataclass
class LocalTemplate:
    raw: dict[str, Any]
    stack_name: str = "inbetween-local"
    parameter_overrides: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        path: Path = TEMPLATE_PATH,
        *,
        stack_name: str = "inbetween-local",
        parameters: dict[str, str] | None = None,
    ) -> LocalTemplate:
        decoded, matches = decode_str(path.read_text())
        if decoded is None:
            raise TemplateError(f"could not parse {path}: {matches}")
        return cls(_plain(decoded), stack_name=stack_name, parameter_overrides=dict(parameters or {}))

    # ---- parameters and conditions -------------------------------------------------------------------
    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.raw.get("Resources", {})

    def parameter(self, name: str) -> str:
        if name in self.parameter_overrides:
            return str(self.parameter_overrides[name])
        spec = self.raw.get("Parameters", {}).get(name)
        if spec is None:
            raise TemplateError(f"unknown parameter {name!r}")
        if "Default" not in spec:
            raise TemplateError(f"parameter {name!r} has no default; pass it as an override")
        return str(spec["Default"])

    def pseudo(self, name: str) -> str | object:
        return {
            "AWS::StackName": self.stack_name,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Region": REGION,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{self.stack_name}/local",
            "AWS::NoValue": NO_VALUE,
        }[name]

    def condition(self, name: str) -> bool:
        spec = self.raw.get("Conditions", {}).get(name)
        if spec is None:
            raise TemplateError(f"unknown condition {name!r}")
        return bool(self.resolve(spec, lambda *_: None))

    def is_created(self, logical_id: str) -> bool:
        cond = self.resources[logical_id].get("Condition")
        return cond is None or self.condition(cond)

    def logical_ids(self, resource_type: str) -> list[str]:
        return [
            lid
            for lid, res in self.resources.items()
            if res.get("Type") == resource_type and self.is_created(lid)
        ]

    # ---- intrinsics ---------------------------------------------------------------------------------
    def resolve(self, value: Any, attribute: Callable[[str, str | None], Any]) -> Any:
        """Resolve intrinsics in ``value``. ``attribute(logical_id, None)`` is a resource's Ref value,
        ``attribute(logical_id, "Arn")`` one of its GetAtt values."""
        if isinstance(value, list):
            items = [self.resolve(v, attribute) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg, attribute)
            if key == "Fn::GetAtt":
                lid, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return attribute(lid, attr)
            if key == "Fn::Sub":
                return self._sub(arg, attribute)
            if key == "Fn::Join":
                sep, parts = arg
                return sep.join(str(p) for p in self.resolve(parts, attribute))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items, attribute)[int(self.resolve(index, attribute))]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text, attribute)).split(sep)
            if key == "Fn::If":
                cond, yes, no = arg
                return self.resolve(yes if self.condition(cond) else no, attribute)
            if key == "Fn::Equals":
                left, right = (self.resolve(a, attribute) for a in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(arg[0], attribute)
            if key == "Fn::And":
                return all(self.resolve(a, attribute) for a in arg)
            if key == "Fn::Or":
                return any(self.resolve(a, attribute) for a in arg)
            if key == "Condition":
                return self.condition(arg)
        resolved = {k: self.resolve(v, attribute) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _ref(self, name: str, attribute: Callable[[str, str | None], Any]) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.raw.get("Parameters", {}):
            return self.parameter(name)
        if name in self.resources:
            return attribute(name, None)
        raise TemplateError(f"Ref to unknown name {name!r}")

    def _sub(self, arg: Any, attribute: Callable[[str, str | None], Any]) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        values = {k: self.resolve(v, attribute) for k, v in variables.items()}

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in values:
                return str(values[name])
            if "." in name and not name.startswith("AWS::"):
                lid, attr = name.split(".", 1)
                return str(attribute(lid, attr))
            return str(self._ref(name, attribute))

        return _SUB_VAR.sub(one, text)

    # ---- functions ----------------------------------------------------------------------------------
    def functions(self) -> list[FunctionDef]:
        globals_ = self.raw.get("Globals", {}).get("Function", {})
        out = []
        for lid in self.logical_ids("AWS::Serverless::Function"):
            props = self.resources[lid].get("Properties", {})
            env = dict(globals_.get("Environment", {}).get("Variables", {}))
            env.update(props.get("Environment", {}).get("Variables", {}))
            sqs, schedules = [], []
            for name, event in (props.get("Events") or {}).items():
                eprops = event.get("Properties", {})
                if event.get("Type") == "SQS":
                    queue = eprops["Queue"]
                    if not (isinstance(queue, dict) and "Fn::GetAtt" in queue):
                        raise TemplateError(f"{lid}.{name}: the SQS Queue must be !GetAtt <Queue>.Arn")
                    target = queue["Fn::GetAtt"]
                    queue_lid = target[0] if isinstance(target, list) else target.split(".")[0]
                    sqs.append(
                        SqsEventSource(
                            name=name,
                            queue_logical_id=queue_lid,
                            batch_size=int(eprops.get("BatchSize", 10)),
                            report_batch_item_failures="ReportBatchItemFailures"
                            in (eprops.get("FunctionResponseTypes") or []),
                            maximum_batching_window_s=int(eprops.get("MaximumBatchingWindowInSeconds", 0)),
                        )
                    )
                elif event.get("Type") == "Schedule":
                    schedules.append(ScheduleEvent(name=name, expression=str(eprops.get("Schedule", ""))))
            out.append(
                FunctionDef(
                    logical_id=lid,
                    code_uri=str(props.get("CodeUri", globals_.get("CodeUri", ""))),
                    handler=str(props.get("Handler", globals_.get("Handler", ""))),
                    timeout_s=int(props.get("Timeout", globals_.get("Timeout", 3))),
                    memory_mb=int(props.get("MemorySize", globals_.get("MemorySize", 128))),
                    environment=env,
                    sqs_sources=tuple(sqs),
                    schedules=tuple(schedules),
                    layer_paths=self._layer_paths([*globals_.get("Layers", []), *props.get("Layers", [])]),
                )
            )
        return out

    def _layer_paths(self, layers: list[Any]) -> tuple[Path, ...]:
        """The source folders of a function's layers: SAM adds a function's Layers to the Globals ones
        (Globals first); a layer of this template (``!Ref <LayerVersion>``) is its ContentUri, an ARN of
        someone else's layer has no local source and is left out."""
        paths: list[Path] = []
        for layer in layers:
            lid = layer.get("Ref") if isinstance(layer, dict) else None
            res = self.resources.get(lid) if isinstance(lid, str) else None
            if res is None or res.get("Type") != "AWS::Serverless::LayerVersion":
                continue
            content = res.get("Properties", {}).get("ContentUri")
            if isinstance(content, str):
                path = REPO_ROOT / content
                if path not in paths:
                    paths.append(path)
        return tuple(paths)


def physical_name(template: LocalTemplate, logical_id: str) -> str:
    """The name a resource gets locally: its template name if it has one, else ``<stack>-<LogicalId>``."""
    res = template.resources[logical_id]
    props = res.get("Properties", {})
    name_prop = {
        "AWS::S3::Bucket": "BucketName",
        "AWS::SQS::Queue": "QueueName",
        "AWS::DynamoDB::Table": "TableName",
        "AWS::SNS::Topic": "TopicName",
        "AWS::SecretsManager::Secret": "Name",
        "AWS::Logs::LogGroup": "LogGroupName",
    }.get(res.get("Type", ""))
    if name_prop and name_prop in props:

        def no_resources(lid: str, attr: str | None) -> Any:
            raise TemplateError(f"{logical_id}'s name depends on resource {lid}")

        return str(template.resolve(props[name_prop], no_resources))
    return f"{template.stack_name}-{logical_id}"
