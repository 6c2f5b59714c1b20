"""Create the template's AWS resources in moto (buckets, queues, table, topics, secrets, KMS keys).

Resources are created on demand while intrinsics are resolved: a bucket whose notification names a queue
creates that queue first, a queue's RedrivePolicy creates its dead-letter queue first. Resource types that
moto cannot enforce or that have no local effect (IAM roles and policies, bucket and queue policies, log
groups, alarms, the layer) resolve to plausible names and ARNs without being created.
"""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from .template import ACCOUNT_ID, PARTITION, REGION, LocalTemplate, TemplateError, physical_name

CREATED_TYPES = (
    "AWS::KMS::Key",
    "AWS::SQS::Queue",
    "AWS::S3::Bucket",
    "AWS::DynamoDB::Table",
    "AWS::SNS::Topic",
    "AWS::SNS::Subscription",
    "AWS::SecretsManager::Secret",
)


def generate_secret_string(spec: dict[str, Any]) -> str:
    """What ``GenerateSecretString`` would make (the options this template can use)."""
    length = int(spec.get("PasswordLength", 32))
    alphabet = ""
    if not spec.get("ExcludeLowercase"):
        alphabet += string.ascii_lowercase
    if not spec.get("ExcludeUppercase"):
        alphabet += string.ascii_uppercase
    if not spec.get("ExcludeNumbers"):
        alphabet += string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    if spec.get("IncludeSpace"):
        alphabet += " "
    excluded = set(str(spec.get("ExcludeCharacters", "")))
    alphabet = "".join(ch for ch in alphabet if ch not in excluded)
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _str_attrs(props: dict[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for name in names:
        if name in props:
            value = props[name]
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, dict):
                value = json.dumps(value)
            out[name] = str(value)
    return out


class Provisioner:
    """Creates resources in moto and answers Ref/GetAtt for every logical id of the template."""

    def __init__(self, template: LocalTemplate, clients: Any, secret_values: dict[str, str] | None = None):
        self.template = template
        self._clients = clients  # callable: service name -> boto3 client
        self._secret_values = dict(secret_values or {})
        self.physical: dict[str, dict[str, Any]] = {}  # logical id -> {"Ref": ..., attrs...}
        self._creating: set[str] = set()

    # ---- Ref / GetAtt -------------------------------------------------------------------------------
    def attribute(self, logical_id: str, attr: str | None) -> Any:
        if logical_id not in self.physical:
            self.ensure(logical_id)
        values = self.physical[logical_id]
        key = attr or "Ref"
        if key not in values:
            raise TemplateError(f"{logical_id} has no attribute {key!r} locally")
        return values[key]

    def resolve(self, value: Any) -> Any:
        return self.template.resolve(value, self.attribute)

    def create_all(self) -> None:
        for logical_id, res in self.template.resources.items():
            if res.get("Type") in CREATED_TYPES and self.template.is_created(logical_id):
                self.ensure(logical_id)

    def ensure(self, logical_id: str) -> None:
        if logical_id in self.physical:
            return
        if logical_id not in self.template.resources:
            raise TemplateError(f"unknown resource {logical_id!r}")
        if logical_id in self._creating:
            raise TemplateError(f"circular reference through {logical_id}")
        self._creating.add(logical_id)
        try:
            res = self.template.resources[logical_id]
            kind = res.get("Type", "")
            props = self.resolve(res.get("Properties", {})) if kind in CREATED_TYPES else {}
            maker = {
                "AWS::KMS::Key": self._kms_key,
                "AWS::SQS::Queue": self._queue,
                "AWS::S3::Bucket": self._bucket,
                "AWS::DynamoDB::Table": self._table,
                "AWS::SNS::Topic": self._topic,
                "AWS::SNS::Subscription": self._subscription,
                "AWS::SecretsManager::Secret": self._secret,
            }.get(kind)
            if maker is not None and self.template.is_created(logical_id):
                self.physical[logical_id] = maker(logical_id, props)
            else:
                self.physical[logical_id] = self._placeholder(logical_id, kind)
        finally:
            self._creating.discard(logical_id)

    # ---- placeholders for what is not created --------------------------------------------------------
    def _placeholder(self, logical_id: str, kind: str) -> dict[str, Any]:
        name = physical_name(self.template, logical_id)
        service = {
            "AWS::IAM::Role": "iam",
            "AWS::Logs::LogGroup": "logs",
            "AWS::Serverless::Function": "lambda",
            "AWS::Serverless::LayerVersion": "lambda",
            "AWS::CloudWatch::Alarm": "cloudwatch",
        }.get(kind, "local")
        arn = {
            "iam": f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{name}",
            "logs": f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT_ID}:log-group:{name}:*",
            "lambda": f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT_ID}:function:{name}",
        }.get(service, f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT_ID}:{name}")
        return {"Ref": name, "Arn": arn, "Name": name}

    # ---- makers -------------------------------------------------------------------------------------
    def _kms_key(self, logical_id: str, props: dict[str, Any]) -> dict[str, Any]:
        meta = self._clients("kms").create_key(Description=str(props.get("Description", logical_id)))[
            "KeyMetadata"
        ]
        return {"Ref": meta["KeyId"], "Arn": meta["Arn"], "KeyId": meta["KeyId"]}

    def _queue(self, logical_id: str, props: dict[str, Any]) -> dict[str, Any]:
        sqs = self._clients("sqs")
        name = physical_name(self.template, logical_id)
        attributes = _str_attrs(
            props,
            (
                "VisibilityTimeout",
                "MessageRetentionPeriod",
                "DelaySeconds",
                "MaximumMessageSize",
                "ReceiveMessageWaitTimeSeconds",
                "RedrivePolicy",
                "SqsManagedSseEnabled",
                "KmsMasterKeyId",
                "FifoQueue",
                "ContentBasedDeduplication",
            ),
        )
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}

    def _bucket(self, logical_id: str, props: dict[str, Any]) -> dict[str, Any]:
        s3 = self._clients("s3")
        name = physical_name(self.template, logical_id)
        s3.create_bucket(Bucket=name)
        if "BucketEncryption" in props:
            rules = [
                {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
            )
        if "OwnershipControls" in props:
            s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=props["OwnershipControls"])
        if "VersioningConfiguration" in props:
            s3.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]}
            )
        if "LifecycleConfiguration" in props:
            s3.put_bucket_lifecycle_configuration(
                Bucket=name,
                LifecycleConfiguration={
                    "Rules": [_lifecycle_rule(r) for r in props["LifecycleConfiguration"]["Rules"]]
                },
            )
        notification = props.get("NotificationConfiguration")
        if notification:
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration=bucket_notification(notification)
            )
        return {
            "Ref": name,
            "Arn": f"arn:{PARTITION}:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{REGION}.amazonaws.com",
        }

    def _table(self, logical_id: str, props: dict[str, Any]) -> dict[str, Any]:
        desc = create_table(self._clients("dynamodb"), physical_name(self.template, logical_id), props)
        return {
            "Ref": desc["TableName"],
            "Arn": desc["TableArn"],
            "StreamArn": desc.get("LatestStreamArn", ""),
        }

    def _topic(self, logical_id: str, props: dict[str, Any]) -> dict[str, Any]:
        name = physical_name(self.template, logical_id)
        attributes = _str_attrs(props, ("KmsMasterKeyId", "DisplayName", "FifoTopic"))
        arn = self._clients("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"]
        return {"Ref": arn, "TopicArn": arn, "TopicName": name}

    def _subscription(self, logical_id: str, props: dict[str, Any]) -> dict[str, Any]:
        arn = self._clients("sns").subscribe(
            TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"]
        )["SubscriptionArn"]
        return {"Ref": arn, "Arn": arn}

    def _secret(self, logical_id: str, props: dict[str, Any]) -> dict[str, Any]:
        name = physical_name(self.template, logical_id)
        kwargs: dict[str, Any] = {"Name": name}
        if props.get("Description"):
            kwargs["Description"] = str(props["Description"])
        if logical_id in self._secret_values:
            kwargs["SecretString"] = self._secret_values[logical_id]
        elif "SecretString" in props:
            kwargs["SecretString"] = str(props["SecretString"])
        elif "GenerateSecretString" in props:
            kwargs["SecretString"] = generate_secret_string(props["GenerateSecretString"])
        arn = self._clients("secretsmanager").create_secret(**kwargs)["ARN"]
        return {"Ref": arn, "Arn": arn, "Id": arn, "Name": name}


def create_table(ddb: Any, name: str, props: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB table as a (resolved) ``AWS::DynamoDB::Table``'s properties declare it: keys, indexes,
    billing, encryption, streams, TTL and point-in-time recovery. Returns its TableDescription."""
    kwargs: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if "ProvisionedThroughput" in props:
        kwargs["ProvisionedThroughput"] = props["ProvisionedThroughput"]
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if props.get("LocalSecondaryIndexes"):
        kwargs["LocalSecondaryIndexes"] = props["LocalSecondaryIndexes"]
    if props.get("SSESpecification"):
        kwargs["SSESpecification"] = {"Enabled": bool(props["SSESpecification"].get("SSEEnabled"))}
    if props.get("StreamSpecification"):
        kwargs["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    desc: dict[str, Any] = ddb.create_table(**kwargs)["TableDescription"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        ddb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
        )
    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr and pitr.get("PointInTimeRecoveryEnabled"):
        ddb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    return desc


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's lifecycle rule shape -> the S3 API's."""
    out: dict[str, Any] = {"ID": rule.get("Id", ""), "Status": rule["Status"]}
    out["Filter"] = {"Prefix": rule.get("Prefix", "")}
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    if "NoncurrentVersionExpiration" in rule:
        out["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": rule["NoncurrentVersionExpiration"]["NoncurrentDays"]
        }
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": rule["ExpirationInDays"]}
    return out


def bucket_notification(config: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's NotificationConfiguration (resolved) -> put_bucket_notification_configuration's."""

    def with_filter(entry: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
        rules = entry.get("Filter", {}).get("S3Key", {}).get("Rules")
        if rules:
            out["Filter"] = {
                "Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}
            }
        return out

    result: dict[str, Any] = {}
    for entry in config.get("QueueConfigurations", []):
        result.setdefault("QueueConfigurations", []).append(
            with_filter(entry, {"QueueArn": entry["Queue"], "Events": [entry["Event"]]})
        )
    for entry in config.get("TopicConfigurations", []):
        result.setdefault("TopicConfigurations", []).append(
            with_filter(entry, {"TopicArn": entry["Topic"], "Events": [entry["Event"]]})
        )
    if config.get("LambdaConfigurations"):
        raise TemplateError("Lambda bucket notifications are not supported locally: use S3 -> SQS")
    return result
