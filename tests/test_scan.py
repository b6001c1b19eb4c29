"""run_scan against moto's in-process AWS: one failing region does not stop the others, a failed
scan resolves nothing, and the store keeps each finding's lifecycle across scans.

A region is made to fail with real parts: a botocore before-send hook on the sessions the
provider opens answers EC2 DescribeVolumes in that region with a genuine 403
UnauthorizedOperation response, which botocore parses and raises like any AWS error.
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse

from costbot.config import Config
from costbot.model import Kind, Provider, Status
from costbot.pricing import AwsPriceBook
from costbot.providers import build_providers
from costbot.providers.aws import AwsProvider
from costbot.scan import ScanReport, UnitResult, run_scan
from costbot.store import SCANNER_ACTOR, Store
from tests.conftest import make_config

HEALTHY, FAILING = "us-east-1", "eu-west-1"

pytestmark = pytest.mark.usefixtures("aws")

_LOADER = botocore.loaders.create_loader()


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def config(regions: Iterable[str] = (HEALTHY, FAILING)) -> Config:
    return make_config(
        textwrap.dedent(
            f"""
            providers:
              aws:
                regions: [{", ".join(regions)}]
            rules:
              idle_volume:
                min_unattached_days: 0
              unattached_ip:
                min_unattached_days: 0
            """
        )
    )


def session_factory(**hooks: Callable[..., Any]) -> Callable[..., boto3.Session]:
    """Real boto3 sessions sharing one botocore data loader, with the given event hooks."""

    def make(**kwargs: Any) -> boto3.Session:
        core = botocore.session.get_session()
        core.register_component("data_loader", _LOADER)
        session = boto3.Session(botocore_session=core, **kwargs)
        for event, handler in hooks.items():
            session.events.register(event, handler)
        return session

    return make


@functools.cache
def ec2(region: str) -> Any:
    return session_factory()().client("ec2", region_name=region)


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterable[bytes]:
        yield self._body


class RegionOutage:
    """A before-send hook: while `down`, EC2 DescribeVolumes in `region` answers 403."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.down = True

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        if not self.down or f".{self.region}." not in request.url:
            return None
        body = (
            "<Response><Errors><Error><Code>UnauthorizedOperation</Code>"
            "<Message>You are not authorized to perform this operation.</Message>"
            "</Error></Errors><RequestID>r-1</RequestID></Response>"
        )
        return AWSResponse(request.url, 403, {}, _Body(body.encode()))


def scan(
    cfg: Config, store: Store, now: datetime, outage: RegionOutage | None = None
) -> ScanReport:
    hooks = {"before-send.ec2.DescribeVolumes": outage} if outage else {}
    assert cfg.providers.aws is not None
    provider = AwsProvider(
        cfg.providers.aws, cfg.rules.oversized_instance, session_factory=session_factory(**hooks)
    )
    prices = {Provider.AWS: AwsPriceBook(live=False)}
    return run_scan(cfg, store, [provider], prices, now=now)


def volume_in(region: str, size: int = 10) -> str:
    return str(
        ec2(region).create_volume(AvailabilityZone=f"{region}a", Size=size, VolumeType="gp2")[
            "VolumeId"
        ]
    )


def unit_result(report: ScanReport, region: str) -> UnitResult:
    (result,) = [u for u in report.units if u.unit.region == region]
    return result


def finding_id(report: ScanReport, resource_id: str) -> str:
    (fid,) = [f.id for f in report.findings if f.resource_id == resource_id]
    return fid


# -- one failing region ------------------------------------------------------------------------


def test_failing_region_is_recorded_and_the_other_region_completes(
    store: Store, now: datetime
) -> None:
    healthy = volume_in(HEALTHY)
    volume_in(FAILING)

    report = scan(config(), store, now, RegionOutage(FAILING))

    (failed,) = report.failed
    assert failed.unit.region == FAILING
    assert failed.error is not None
    assert "ec2:DescribeVolumes" in failed.error
    assert "UnauthorizedOperation" in failed.error
    assert failed.findings == ()
    ok = unit_result(report, HEALTHY)
    assert ok.ok
    assert [f.resource_id for f in ok.findings] == [healthy]
    stored = store.findings(kind=Kind.IDLE_VOLUME)
    assert [(f.region, f.resource_id) for f in stored] == [(HEALTHY, healthy)]
    rows = [r for r in store.latest_scans("aws") if r["run_id"] == report.run_id]
    assert sorted((r["region"], r["ok"]) for r in rows) == [(FAILING, 0), (HEALTHY, 1)]
    (failed_row,) = [r for r in rows if not r["ok"]]
    assert failed_row["error"] == failed.error


def test_failed_scan_resolves_nothing(store: Store, now: datetime) -> None:
    doomed = volume_in(FAILING)
    volume_in(HEALTHY)
    earlier = now - timedelta(days=1)
    outage = RegionOutage(FAILING)
    outage.down = False
    first = scan(config(), store, earlier, outage)
    fid = finding_id(first, doomed)
    # Gone from AWS: a successful scan of the region would resolve the finding.
    ec2(FAILING).delete_volume(VolumeId=doomed)
    outage.down = True

    second = scan(config(), store, now, outage)

    assert [u.unit.region for u in second.failed] == [FAILING]
    assert unit_result(second, FAILING).resolved == 0
    kept = store.get(fid)
    assert kept.status is Status.OPEN
    assert kept.last_seen == earlier
    assert [e.to_status for e in store.events(fid)] == [Status.OPEN]


# -- lifecycle through run_scan ----------------------------------------------------------------


def test_vanished_resources_are_resolved_by_the_next_successful_scan(
    store: Store, now: datetime
) -> None:
    volume = volume_in(HEALTHY)
    address = ec2(HEALTHY).allocate_address(Domain="vpc")["AllocationId"]
    earlier = now - timedelta(days=1)
    first = scan(config([HEALTHY]), store, earlier)
    ids = {finding_id(first, volume), finding_id(first, address)}
    ec2(HEALTHY).delete_volume(VolumeId=volume)
    ec2(HEALTHY).release_address(AllocationId=address)

    second = scan(config([HEALTHY]), store, now)

    assert second.findings == []
    assert unit_result(second, HEALTHY).resolved == 2
    for fid in ids:
        finding = store.get(fid)
        assert finding.status is Status.RESOLVED
        assert finding.status_changed_at == now
        last = store.events(fid)[-1]
        assert (last.from_status, last.to_status) == (Status.OPEN, Status.RESOLVED)
        assert last.actor == SCANNER_ACTOR
        assert last.at == now


def test_reseen_finding_keeps_first_seen_and_moves_last_seen(store: Store, now: datetime) -> None:
    volume = volume_in(HEALTHY)
    earlier = now - timedelta(days=2)

    first = scan(config([HEALTHY]), store, earlier)
    second = scan(config([HEALTHY]), store, now)

    fid = finding_id(second, volume)
    assert fid == finding_id(first, volume)
    assert unit_result(first, HEALTHY).new == 1
    assert unit_result(second, HEALTHY).new == 0
    finding = store.get(fid)
    assert finding.status is Status.OPEN
    assert finding.first_seen == earlier
    assert finding.last_seen == now
    assert finding.first_seen_unattached == earlier
    assert [e.to_status for e in store.events(fid)] == [Status.OPEN]


def test_resolved_finding_that_is_wasteful_again_is_reopened(store: Store, now: datetime) -> None:
    volume = volume_in(HEALTHY)
    instance = ec2(HEALTHY).run_instances(
        ImageId="ami-12345678",
        MinCount=1,
        MaxCount=1,
        InstanceType="m5.large",
        Placement={"AvailabilityZone": f"{HEALTHY}a"},
    )["Instances"][0]["InstanceId"]
    fid = finding_id(scan(config([HEALTHY]), store, now - timedelta(days=2)), volume)
    ec2(HEALTHY).attach_volume(VolumeId=volume, InstanceId=instance, Device="/dev/sdf")
    scan(config([HEALTHY]), store, now - timedelta(days=1))
    assert store.get(fid).status is Status.RESOLVED
    ec2(HEALTHY).detach_volume(VolumeId=volume, InstanceId=instance)

    scan(config([HEALTHY]), store, now)

    reopened = store.get(fid)
    assert reopened.status is Status.OPEN
    assert reopened.first_seen_unattached == now  # the idle clock restarted at re-detachment
    assert [e.to_status for e in store.events(fid)] == [
        Status.OPEN,
        Status.RESOLVED,
        Status.OPEN,
    ]


def test_on_unit_is_called_once_per_unit_with_the_total(store: Store, now: datetime) -> None:
    cfg = config()
    assert cfg.providers.aws is not None
    provider = AwsProvider(
        cfg.providers.aws, cfg.rules.oversized_instance, session_factory=session_factory()
    )
    seen: list[tuple[str, int]] = []

    report = run_scan(
        cfg,
        store,
        [provider],
        {Provider.AWS: AwsPriceBook(live=False)},
        now=now,
        on_unit=lambda result, total: seen.append((result.unit.region, total)),
    )

    assert sorted(seen) == [(FAILING, 2), (HEALTHY, 2)]
    assert sorted(u.unit.region for u in report.units) == [FAILING, HEALTHY]


def test_unusable_credentials_profile_is_a_recorded_failure_not_a_crash(
    store: Store, now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    cfg = config([HEALTHY])

    report = run_scan(
        cfg, store, build_providers(cfg), {Provider.AWS: AwsPriceBook(live=False)}, now=now
    )

    (failed,) = report.failed
    assert failed.error is not None
    assert "no-such-profile" in failed.error
    assert [r["ok"] for r in store.latest_scans("aws")] == [0]
