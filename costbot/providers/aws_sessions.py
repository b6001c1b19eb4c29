"""AWS credentials per account: the ambient boto3 chain or an assumed role, and thread-safe
client creation. Shared by the read-only inventory and the cleaners."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from costbot.config import AwsAccount, AwsConfig
from costbot.errors import ProviderError
from costbot.model import Provider, Unit
from costbot.ratelimit import RateLimiter

REFRESH_BEFORE_EXPIRY = timedelta(minutes=5)
"""Assumed-role credentials are renewed this long before they expire (long-running serve)."""


def client_config(max_pool_connections: int = 10) -> BotoConfig:
    """botocore settings for every costbot client: adaptive retries (throttling), bounded
    timeouts so an unreachable endpoint fails in seconds, and a bounded connection pool."""
    return BotoConfig(
        retries={"mode": "adaptive", "max_attempts": 5},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=max_pool_connections,
        user_agent_extra="costbot",
    )


@contextmanager
def aws_errors(unit: Unit | None, operation: str, account: str = "") -> Iterator[None]:
    """Re-raise botocore errors from `operation` as ProviderError with the unit attached."""
    try:
        yield
    except ClientError as exc:
        err = exc.response.get("Error", {})
        message = f"{operation}: {err.get('Code', 'error')}: {err.get('Message', exc)}"
        raise _provider_error(message, unit, operation, account) from exc
    except BotoCoreError as exc:
        raise _provider_error(f"{operation}: {exc}", unit, operation, account) from exc


def _provider_error(message: str, unit: Unit | None, operation: str, account: str) -> ProviderError:
    return ProviderError(
        message,
        provider=Provider.AWS,
        account=unit.account if unit else account,
        region=unit.region if unit else "",
        operation=operation,
    )


class AwsSessions:
    """One boto3 session per account, opened on first use; clients are created under a lock."""

    def __init__(
        self,
        config: AwsConfig,
        *,
        session_factory: Callable[..., boto3.Session] = boto3.Session,
        max_pool_connections: int = 10,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self._config = config
        self._raw_factory = session_factory
        self._loader = botocore.loaders.create_loader()
        self._limiter = rate_limiter
        self._discovered: dict[str, AwsAccount] | None = None
        self.boto_config = client_config(max_pool_connections)
        self._sessions: dict[str, boto3.Session] = {}
        self._expires: dict[str, datetime] = {}
        self._clients: dict[tuple[int, str, str], Any] = {}
        self._ambient: str | None = None
        self._lock = threading.RLock()

    def _factory(self, **credentials: Any) -> boto3.Session:
        if self._raw_factory is boto3.Session:  # share one model loader across accounts
            core = botocore.session.get_session()
            core.register_component("data_loader", self._loader)
            session = boto3.Session(botocore_session=core, **credentials)
        else:
            session = self._raw_factory(**credentials)
        if self._limiter is not None:
            session.events.register("before-call", self._limiter.before_call)
        return session

    def accounts(self) -> list[AwsAccount | None]:
        """The accounts to scan: configured ones, then organization members (None = ambient)."""
        targets: list[AwsAccount | None] = list(self._config.accounts)
        organization = self._config.organization
        if organization is not None:
            targets += list(self._members().values())
            if organization.include_management_account:
                targets.append(None)
        return targets or [None]

    def _members(self) -> dict[str, AwsAccount]:
        """Active member accounts of the caller's organization (organizations:ListAccounts)."""
        organization = self._config.organization
        assert organization is not None
        with self._lock:
            if self._discovered is not None:
                return self._discovered
            me = self._open_ambient()
            base = self._sessions[me]
            with aws_errors(None, "organizations:ListAccounts", me):
                client = base.client("organizations", config=self.boto_config)
                partition = (
                    base.client("sts", config=self.boto_config)
                    .get_caller_identity()["Arn"]
                    .split(":")[1]
                )
                members = [
                    account
                    for page in client.get_paginator("list_accounts").paginate()
                    for account in page["Accounts"]
                    if account.get("Status", "ACTIVE") == "ACTIVE"
                ]
            skip = {me, *organization.exclude_accounts, *(a.id for a in self._config.accounts)}
            self._discovered = {
                a["Id"]: AwsAccount(
                    id=a["Id"],
                    name=a.get("Name", ""),
                    role_arn=f"arn:{partition}:iam::{a['Id']}:role/{organization.role_name}",
                )
                for a in members
                if a["Id"] not in skip
            }
            return self._discovered

    def open(self, account: AwsAccount | None) -> str:
        """Open credentials for a configured account (None = ambient); returns its account id."""
        with self._lock:
            if account is None:
                return self._open_ambient()
            expires = self._expires.get(account.id)
            if account.id not in self._sessions or (
                expires is not None and expires - datetime.now(UTC) < REFRESH_BEFORE_EXPIRY
            ):
                self._sessions[account.id] = self._assume(account)
            return account.id

    def _open_ambient(self) -> str:
        if self._ambient is None:
            with aws_errors(None, "sts:GetCallerIdentity"):
                base = self._factory()
                identity = base.client("sts", config=self.boto_config).get_caller_identity()
            self._ambient = str(identity["Account"])
            self._sessions[self._ambient] = base
        return self._ambient

    def _assume(self, account: AwsAccount) -> boto3.Session:
        extra: dict[str, Any] = {"ExternalId": account.external_id} if account.external_id else {}
        with aws_errors(None, "sts:AssumeRole", account.id):
            base = self._factory()
            answer = base.client("sts", config=self.boto_config).assume_role(
                RoleArn=account.role_arn, RoleSessionName="costbot", **extra
            )
            creds = answer["Credentials"]
            session = self._factory(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
            )
        self._expires[account.id] = creds["Expiration"]
        return session

    def client(self, account_id: str, service: str, region: str) -> Any:
        """A client acting in `account_id`; ProviderError if no configured credentials reach it."""
        with self._lock:
            configured = {a.id: a for a in self._config.accounts}
            if self._config.organization is not None and account_id not in configured:
                configured = self._members() | configured  # explicit entries win
            if account_id in configured:
                self.open(configured[account_id])
            elif account_id not in self._sessions and (
                not self._config.accounts or self._config.organization is not None
            ):
                self._open_ambient()
            session = self._sessions.get(account_id)
            if session is None:
                raise ProviderError(
                    f"no configured credentials reach AWS account {account_id}",
                    provider=Provider.AWS,
                    account=account_id,
                )
            key = (id(session), service, region)
            if key not in self._clients:  # botocore clients are thread-safe: build each once
                make: Any = session.client
                self._clients[key] = make(service, region_name=region, config=self.boto_config)
            return self._clients[key]
