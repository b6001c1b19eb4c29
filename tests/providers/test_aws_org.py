"""AWS Organizations discovery and per-account role assumption, against moto's in-process AWS.

The organization, its member accounts and their waste are created with boto3 itself
(organizations:CreateAccount, then sts:AssumeRole into a member to seed it). costbot then runs
its real scan with `providers.aws.organization` and its real cleaners; every expectation comes
from what was seeded in which account. AssumeRole calls are observed (never changed) with a
botocore hook on the sessions costbot creates.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest
import yaml
from botocore.awsrequest import AWSResponse

from cleaners import build_cleaners
from costbot.actions import Readiness
from costbot.config import Config
from costbot.errors import ProviderError
from costbot.model import Kind, Provider, Status, Unit, finding_id
from costbot.pricing import AwsPriceBook
from costbot.providers.aws import AwsProvider
from costbot.scan import ScanReport, run_scan
from costbot.store import Store
from tests.conftest import make_config

pytestmark = [pytest.mark.usefixtures("aws"), pytest.mark.timeout(60)]

MANAGEMENT = "123456789012"
"""The account moto answers for the ambient (not assumed) credentials."""
ROLE = "costbot-read"
REGIONS = ("us-east-1", "eu-west-1")

_LOADER = botocore.loaders.create_loader()


def new_session(**credentials: Any) -> boto3.Session:
    core = botocore.session.get_session()
    core.register_component("data_loader", _LOADER)
    return boto3.Session(botocore_session=core, **credentials)


@dataclass
class Org:
    """An organization in moto: members by name, and where the seeded waste lives."""

    members: dict[str, str]
    suspended: str
    addresses: dict[str, str]
    """account id -> allocation id of its unassociated Elastic IP (in us-east-1)."""

    def session(self, account: str) -> boto3.Session:
        if account == MANAGEMENT:
            return new_session()
        creds = (
            new_session()
            .client("sts")
            .assume_role(RoleArn=f"arn:aws:iam::{account}:role/{ROLE}", RoleSessionName="seeding")[
                "Credentials"
            ]
        )
        return new_session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )


@pytest.fixture
def org() -> Org:
    """Members a, b, c (active) and d (closed: SUSPENDED); an unassociated EIP in the
    management account, in a and in c."""
    client = new_session().client("organizations", region_name="us-east-1")
    client.create_organization(FeatureSet="ALL")
    members = {
        name: client.create_account(Email=f"{name}@example.com", AccountName=name)[
            "CreateAccountStatus"
        ]["AccountId"]
        for name in ("a", "b", "c", "d")
    }
    client.close_account(AccountId=members["d"])
    seeded = Org(members, members.pop("d"), {})
    for account in (MANAGEMENT, members["a"], members["c"]):
        ec2 = seeded.session(account).client("ec2", region_name="us-east-1")
        seeded.addresses[account] = ec2.allocate_address(Domain="vpc")["AllocationId"]
    return seeded


def org_config(exclude: list[str], **organization: Any) -> Config:
    data = {
        "providers": {
            "aws": {
                "regions": list(REGIONS),
                "organization": {"role_name": ROLE, "exclude_accounts": exclude, **organization},
            }
        },
        "rules": {"unattached_ip": {"min_unattached_days": 0}},
    }
    return make_config(yaml.safe_dump(data))


class AssumeRoles:
    """Records the RoleArn of every sts:AssumeRole costbot sends (observing only)."""

    def __init__(self) -> None:
        self.arns: list[str] = []
        self._lock = threading.Lock()

    def hook(self, params: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self.arns.append(params["RoleArn"])

    def factory(self) -> Callable[..., boto3.Session]:
        def make(**credentials: Any) -> boto3.Session:
            session = new_session(**credentials)
            session.events.register("before-parameter-build.sts.AssumeRole", self.hook)
            return session

        return make


def scan(config: Config, store: Store, factory: Callable[..., boto3.Session]) -> ScanReport:
    aws = config.providers.aws
    assert aws is not None
    provider = AwsProvider(aws, config.rules.oversized_instance, session_factory=factory)
    return run_scan(config, store, [provider], {Provider.AWS: AwsPriceBook(live=False)})


def units(report: ScanReport) -> list[tuple[str, str]]:
    return sorted((u.unit.account, u.unit.region) for u in report.units)


def test_members_and_the_management_account_are_scanned(org: Org, store: Store) -> None:
    a, b, c = org.members["a"], org.members["b"], org.members["c"]
    roles = AssumeRoles()

    report = scan(org_config(exclude=[c]), store, roles.factory())

    assert not report.failed, report.failed
    scanned = {MANAGEMENT, a, b}
    assert units(report) == sorted((acct, r) for acct in scanned for r in REGIONS)
    # one role per member, named from role_name; never for the caller or the excluded/closed
    assert sorted(roles.arns) == sorted(f"arn:aws:iam::{m}:role/{ROLE}" for m in (a, b))
    # each EIP is reported under the account it lives in; c's is never seen
    found = {(f.unit.account, f.kind, f.resource_id) for f in report.findings}
    assert found == {
        (MANAGEMENT, Kind.UNATTACHED_IP, org.addresses[MANAGEMENT]),
        (a, Kind.UNATTACHED_IP, org.addresses[a]),
    }
    stored = store.get(
        finding_id(Unit(Provider.AWS, a, "us-east-1"), Kind.UNATTACHED_IP, org.addresses[a])
    )
    assert (stored.account, stored.region, stored.status) == (a, "us-east-1", Status.OPEN)
    assert {s["account"] for s in store.latest_scans()} == scanned
    assert all(s["ok"] for s in store.latest_scans())


def test_without_the_management_account_only_members_are_scanned(org: Org, store: Store) -> None:
    a, b, c = org.members["a"], org.members["b"], org.members["c"]

    report = scan(
        org_config(exclude=[c], include_management_account=False), store, AssumeRoles().factory()
    )

    assert not report.failed
    assert units(report) == sorted((acct, r) for acct in (a, b) for r in REGIONS)
    assert {f.unit.account for f in report.findings} == {a}


def test_cleaners_reach_the_member_account(org: Org, store: Store) -> None:
    a, c = org.members["a"], org.members["c"]
    config = org_config(exclude=[c])
    scan(config, store, AssumeRoles().factory())
    finding = store.get(
        finding_id(Unit(Provider.AWS, a, "us-east-1"), Kind.UNATTACHED_IP, org.addresses[a])
    )
    roles = AssumeRoles()
    cleaners = build_cleaners(config, session_factory=roles.factory())

    check = cleaners[(Provider.AWS, Kind.UNATTACHED_IP)].dry_run(finding)

    # READY means DescribeAddresses found the EIP, which exists only in account a
    assert check.readiness is Readiness.READY, check.verdict
    assert "EC2 dry run passed" in check.verdict
    assert check.params["allocation_id"] == org.addresses[a]
    assert roles.arns == [f"arn:aws:iam::{a}:role/{ROLE}"]
    # a dry run changes nothing
    ec2 = org.session(a).client("ec2", region_name="us-east-1")
    assert [x["AllocationId"] for x in ec2.describe_addresses()["Addresses"]] == [org.addresses[a]]


def test_an_excluded_account_is_not_reachable_by_the_cleaners(org: Org, store: Store) -> None:
    """A finding recorded for account c while it was scanned; the config now excludes c, so
    no credentials reach it and the dry run refuses instead of acting with the wrong ones."""
    a, c = org.members["a"], org.members["c"]
    scan(org_config(exclude=[a]), store, AssumeRoles().factory())
    finding = store.get(
        finding_id(Unit(Provider.AWS, c, "us-east-1"), Kind.UNATTACHED_IP, org.addresses[c])
    )
    config = org_config(exclude=[c])
    cleaners = build_cleaners(config, session_factory=AssumeRoles().factory())

    with pytest.raises(ProviderError, match=f"no configured credentials reach AWS account {c}"):
        cleaners[(Provider.AWS, Kind.UNATTACHED_IP)].dry_run(finding)


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def not_in_use(request: Any, **_: Any) -> AWSResponse:
    """What AWS answers ListAccounts from an account outside any organization (moto lists
    the lone account instead, so the real error response is injected before sending)."""
    body = (
        b'{"__type": "AWSOrganizationsNotInUseException",'
        b' "Message": "Your account is not a member of an organization."}'
    )
    return AWSResponse(
        request.url, 400, {"Content-Type": "application/x-amz-json-1.1"}, _Body(body)
    )


def test_when_the_organization_cannot_be_listed_every_region_fails(store: Store) -> None:
    roles = AssumeRoles()
    factory = roles.factory()

    def make(**credentials: Any) -> boto3.Session:
        session = factory(**credentials)
        session.events.register("before-send.organizations.ListAccounts", not_in_use)
        return session

    report = scan(org_config(exclude=[]), store, make)

    assert units(report) == sorted(("organization", r) for r in REGIONS)
    assert len(report.failed) == len(REGIONS)
    assert all(
        "organizations:ListAccounts: AWSOrganizationsNotInUseException" in (u.error or "")
        for u in report.units
    )
    assert roles.arns == []
    assert {(s["account"], s["ok"]) for s in store.latest_scans()} == {("organization", 0)}


def test_an_account_both_configured_and_a_member_is_scanned_once(org: Org, store: Store) -> None:
    a, b, c = org.members["a"], org.members["b"], org.members["c"]
    data = {
        "providers": {
            "aws": {
                "regions": ["us-east-1"],
                "accounts": [{"id": a, "role_arn": f"arn:aws:iam::{a}:role/special"}],
                "organization": {"role_name": ROLE, "exclude_accounts": [c]},
            }
        },
        "rules": {"unattached_ip": {"min_unattached_days": 0}},
    }
    report = scan(make_config(yaml.safe_dump(data)), store, AssumeRoles().factory())
    assert units(report) == sorted((acct, "us-east-1") for acct in (MANAGEMENT, a, b))
