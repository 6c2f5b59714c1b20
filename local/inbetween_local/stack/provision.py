"""One builder of the template's resources, for every harness: the local stack, the integration tests and
the bench all provision through ``provision`` (so a queue, index or secret changed in template.yaml
reaches all three).

    provisioned = provision(boto3_session, stack_name="it-1a2b3c", secret_values={
        "DASHSCOPE_API_KEY_SECRET": "sk-...",  # by the environment variable that names the secret...
        "WebhookSigningSecret": "QUJD...",     # ...or by the secret's logical id
    })
    settings = load_settings({**provisioned.environment, "PROVIDER_BASE_URL": emulator_url})

``environment`` is what the template gives the functions (Globals and each function's own variables,
intrinsics resolved to the physical names); ``outputs`` are the template's Outputs, resolved. What a
harness adds on top (endpoints, short clocks, test-only queues) is the harness's business.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .resources import Provisioner, create_table
from .template import TEMPLATE_PATH, FunctionDef, LocalTemplate, TemplateError

ClientFactory = Callable[[str], Any]  # service name -> boto3 client

__all__ = [
    "ClientFactory",
    "Provisioned",
    "client_factory",
    "create_table_like",
    "function_environment",
    "provision",
]


def client_factory(source: Any) -> ClientFactory:
    """A cached service -> client function from a boto3 session (anything with ``.client``) or from a
    function that makes clients."""
    make: ClientFactory = source.client if hasattr(source, "client") else source
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = make(service)
        return clients[service]

    return client


def function_environment(
    template: LocalTemplate, resolve: Callable[[Any], Any], function: str | None = None
) -> dict[str, str]:
    """The environment the template gives its functions (all of them, or ``function``), resolved."""
    env: dict[str, str] = {}
    for fn in template.functions():
        if function is None or fn.logical_id == function:
            for name, value in fn.environment.items():
                env[name] = str(resolve(value))
    return env


@dataclass
class Provisioned:
    """The template's resources, created; answers Ref/GetAtt and holds the functions' environment."""

    template: LocalTemplate
    provisioner: Provisioner
    environment: dict[str, str]
    clients: ClientFactory

    def resolve(self, value: Any) -> Any:
        return self.provisioner.resolve(value)

    def ref(self, logical_id: str) -> str:
        return str(self.resolve({"Ref": logical_id}))

    def arn(self, logical_id: str) -> str:
        return str(self.resolve({"Fn::GetAtt": [logical_id, "Arn"]}))

    @property
    def outputs(self) -> dict[str, str]:
        """The template's Outputs (those whose condition holds), resolved now: an attribute a harness
        supplies later (the local function URL) shows up once it is there."""
        return {
            name: str(self.resolve(spec["Value"]))
            for name, spec in self.template.raw.get("Outputs", {}).items()
            if "Condition" not in spec or self.template.condition(spec["Condition"])
        }

    @property
    def functions(self) -> dict[str, FunctionDef]:
        return {fn.logical_id: fn for fn in self.template.functions()}

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """One function's own environment (Globals and its Environment), resolved."""
        if logical_id not in self.functions:
            raise TemplateError(f"no function {logical_id!r} is created with these parameters")
        return function_environment(self.template, self.resolve, logical_id)

    @property
    def queue_urls(self) -> dict[str, str]:
        return {lid: self.ref(lid) for lid in self.template.logical_ids("AWS::SQS::Queue")}

    def discard_s3_test_events(self) -> int:
        """S3 announces a new notification target with an ``s3:TestEvent`` message: remove those from
        the buckets' target queues (a harness that counts messages starts from empty queues)."""
        sqs = self.clients("sqs")
        discarded = 0
        for url in self._notification_queue_urls():
            for _ in range(3):
                messages = sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
                ).get("Messages", [])
                tests = [m for m in messages if _is_s3_test_event(m.get("Body", ""))]
                for m in tests:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                discarded += len(tests)
                if not tests:
                    break
        return discarded

    def _notification_queue_urls(self) -> list[str]:
        by_arn = {self.arn(lid): self.ref(lid) for lid in self.template.logical_ids("AWS::SQS::Queue")}
        urls: list[str] = []
        for lid in self.template.logical_ids("AWS::S3::Bucket"):
            notification = self.template.resources[lid].get("Properties", {}).get("NotificationConfiguration")
            for entry in (notification or {}).get("QueueConfigurations", []):
                url = by_arn.get(str(self.resolve(entry["Queue"])))
                if url and url not in urls:
                    urls.append(url)
        return urls


def _is_s3_test_event(body: str) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("Event") == "s3:TestEvent"


def _secret_ids(template: LocalTemplate, secret_values: dict[str, str]) -> dict[str, str]:
    """``secret_values`` keyed by logical id: a key is a secret's logical id, or the name of a function
    environment variable whose value is ``!Ref <secret>``."""
    secrets = {
        lid for lid, res in template.resources.items() if res.get("Type") == "AWS::SecretsManager::Secret"
    }
    globals_env = template.raw.get("Globals", {}).get("Function", {}).get("Environment", {})
    variables: dict[str, Any] = dict(globals_env.get("Variables", {}))
    for res in template.resources.values():
        if res.get("Type") == "AWS::Serverless::Function":
            variables.update(res.get("Properties", {}).get("Environment", {}).get("Variables", {}))
    out: dict[str, str] = {}
    for key, value in secret_values.items():
        if key in secrets:
            out[key] = value
            continue
        ref = variables.get(key)
        target = ref.get("Ref") if isinstance(ref, dict) else None
        if target not in secrets:
            raise TemplateError(f"{key!r} is neither a secret of the template nor a variable naming one")
        out[str(target)] = value
    return out


def provision(
    clients: Any,
    *,
    stack_name: str | None = None,
    parameters: dict[str, str] | None = None,
    secret_values: dict[str, str] | None = None,
    template: LocalTemplate | None = None,
    template_path: Path = TEMPLATE_PATH,
) -> Provisioned:
    """Create every resource of template.yaml (under ``stack_name``, with ``parameters``) through
    ``clients`` (a boto3 session or a service -> client function; point it at moto). ``secret_values``
    fills secrets that the template leaves empty or generates (by logical id or by the environment
    variable that names the secret). Pass ``template`` instead of a name and parameters to use an already
    loaded one."""
    if template is None:
        template = LocalTemplate.load(
            template_path, stack_name=stack_name or "inbetween-local", parameters=parameters
        )
    elif (stack_name is not None and stack_name != template.stack_name) or parameters:
        raise ValueError("pass either a loaded template or a stack name and parameters, not both")
    factory = client_factory(clients)
    provisioner = Provisioner(template, factory, _secret_ids(template, dict(secret_values or {})))
    provisioner.create_all()
    environment = function_environment(template, provisioner.resolve)
    return Provisioned(template=template, provisioner=provisioner, environment=environment, clients=factory)


_TABLE_TEMPLATES: dict[tuple[Path, str], dict[str, Any]] = {}


def create_table_like(
    ddb: Any, name: str, logical_id: str = "JobsTable", *, template_path: Path = TEMPLATE_PATH
) -> dict[str, Any]:
    """Only one table, named ``name``, as the template declares ``logical_id`` (keys, indexes, TTL...):
    for a harness that needs the table and nothing else. Returns its TableDescription."""
    key = (Path(template_path), logical_id)
    if key not in _TABLE_TEMPLATES:
        template = LocalTemplate.load(template_path)
        res = template.resources.get(logical_id)
        if res is None or res.get("Type") != "AWS::DynamoDB::Table":
            raise TemplateError(f"{logical_id!r} is not a table of {template_path}")

        def no_resources(lid: str, attr: str | None) -> Any:
            raise TemplateError(f"{logical_id}'s properties depend on resource {lid}")

        _TABLE_TEMPLATES[key] = template.resolve(res.get("Properties", {}), no_resources)
    return create_table(ddb, name, _TABLE_TEMPLATES[key])
