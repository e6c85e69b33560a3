"""AWS IoT Core over HTTPS: boto3 ``iot-data`` ``publish`` (SigV4).

Credentials come from boto3's default chain (environment, shared files, instance or container
role), or from assuming a role in the customer's account with an external id (STS AssumeRole,
the way 1NCE's cross-account role works), refreshed by botocore before they expire.

boto3 blocks, so every call runs in this integration's own small thread pool; the event loop
only awaits the result. boto3 clients are thread-safe and one is shared by the pool.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .aws_common import check_publish, topic_for
from .base import DeliveryError, SenderContext

log = logging.getLogger("nce.aws")

DENIED_CODES = {"ForbiddenException", "AccessDenied", "AccessDeniedException", "UnauthorizedException",
                "UnrecognizedClientException", "InvalidClientTokenId", "SignatureDoesNotMatch",
                "ExpiredTokenException", "ExpiredToken"}
PERMANENT_CODES = {"RequestEntityTooLargeException", "InvalidRequestException"}


@dataclass
class AwsIotDataSettings:
    region: str | None = None
    endpoint_url: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    session_name: str = "nce-gateway"
    session_duration_seconds: int = 3600
    sts_endpoint_url: str | None = None
    timeout_seconds: float = 20.0
    threads: int = 8

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> AwsIotDataSettings:
        return cls(region=config.get("region"), endpoint_url=config.get("endpoint_url"),
                   role_arn=config.get("role_arn"), external_id=config.get("external_id"),
                   session_name=config.get("session_name") or "nce-gateway",
                   session_duration_seconds=int(config.get("session_duration_seconds", 3600)),
                   sts_endpoint_url=config.get("sts_endpoint_url"),
                   timeout_seconds=float(config.get("timeout_seconds", 20.0)),
                   threads=int(config.get("threads", 8)))


class AwsIotDataSender:
    needs_device = False

    def __init__(self, settings: AwsIotDataSettings, context: SenderContext | None = None) -> None:
        self.settings = settings
        self.context = context or SenderContext(name="aws")
        self._pool = ThreadPoolExecutor(max(1, settings.threads),
                                        thread_name_prefix=f"aws-{self.context.name}"[:30])
        self._lock = threading.Lock()
        self._client: Any = None
        self.credentials: Any = None  # the RefreshableCredentials when a role is assumed
        self.role_sessions = 0  # AssumeRole calls made (initial + refreshes)

    # boto3 (in the pool's threads) ------------------------------------------------------

    def _assume_role(self, sts: Any) -> dict[str, str]:
        kwargs: dict[str, Any] = {"RoleArn": self.settings.role_arn, "RoleSessionName": self.settings.session_name,
                                  "DurationSeconds": self.settings.session_duration_seconds}
        if self.settings.external_id:
            kwargs["ExternalId"] = self.settings.external_id
        credentials = sts.assume_role(**kwargs)["Credentials"]
        self.role_sessions += 1
        log.info("assumed role %s for %s (expires %s)", self.settings.role_arn, self.context.name,
                 credentials["Expiration"], extra={"event": "aws_role_assumed", "integration": self.context.name})
        return {"access_key": credentials["AccessKeyId"], "secret_key": credentials["SecretAccessKey"],
                "token": credentials["SessionToken"], "expiry_time": credentials["Expiration"].isoformat()}

    def _build_client(self) -> Any:
        import boto3
        import botocore.session
        from botocore.config import Config
        from botocore.credentials import RefreshableCredentials

        config = Config(connect_timeout=self.settings.timeout_seconds, read_timeout=self.settings.timeout_seconds,
                        retries={"mode": "standard", "max_attempts": 3},
                        max_pool_connections=max(10, self.settings.threads))
        if not self.settings.role_arn:
            session = boto3.session.Session(region_name=self.settings.region)
        else:
            base = boto3.session.Session(region_name=self.settings.region)
            sts = base.client("sts", endpoint_url=self.settings.sts_endpoint_url, config=config)
            self.credentials = RefreshableCredentials.create_from_metadata(
                metadata=self._assume_role(sts), refresh_using=lambda: self._assume_role(sts),
                method="sts-assume-role")
            core = botocore.session.get_session()
            core._credentials = self.credentials  # the documented way to hand botocore refreshable credentials
            session = boto3.session.Session(botocore_session=core, region_name=self.settings.region)
        return session.client("iot-data", endpoint_url=self.settings.endpoint_url, config=config)

    def _client_or_build(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._build_client()
            return self._client

    def _publish(self, topic: str, payload: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

        try:
            self._client_or_build().publish(topic=topic, qos=1, payload=payload)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code") or "Unknown"
            message = error.get("Message") or ""
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if exc.operation_name == "AssumeRole":
                description = f"cannot assume role {self.settings.role_arn} ({code}): {message}"
                self.context.problems.report("credentials", f"assume:{code}", description)  # type: ignore[union-attr]
                raise DeliveryError(description) from None
            if code in DENIED_CODES or status == 403:
                description = f"publishing to topic {topic!r} was denied ({code}): {message}"
                self.context.problems.report("publish", f"denied:{code}:{topic}", description)  # type: ignore[union-attr]
                raise DeliveryError(description) from None
            if code in PERMANENT_CODES or status == 413:
                raise DeliveryError(f"AWS IoT Core refused the event for topic {topic!r} ({code}): {message}",
                                    permanent=True) from None
            raise DeliveryError(f"AWS IoT Core publish to topic {topic!r} failed ({code}, HTTP {status}): "
                                f"{message}") from None
        except NoCredentialsError:
            description = "no AWS credentials found (environment, shared files or instance role)"
            self.context.problems.report("credentials", "nocredentials", description)  # type: ignore[union-attr]
            raise DeliveryError(description) from None
        except NoRegionError:
            raise DeliveryError("no AWS region: set region in the integration") from None
        except BotoCoreError as exc:
            raise DeliveryError(f"AWS IoT Core publish to topic {topic!r} failed: {exc}") from None

    # the sender -------------------------------------------------------------------------

    async def send(self, body: str, device: dict[str, str] | None, event_type: str) -> None:
        topic = topic_for(event_type, body)
        payload = body.encode("utf-8")
        check_publish(topic, payload)
        await asyncio.get_running_loop().run_in_executor(self._pool, self._publish, topic, payload)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown, True)
