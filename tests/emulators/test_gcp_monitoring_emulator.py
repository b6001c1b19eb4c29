"""MonitoringEmulator driven by the REAL monitoring_v3.MetricServiceClient over an injected
insecure gRPC channel: filters, the [start, end) interval, ALIGN_MEAN/ALIGN_MAX/ALIGN_NONE over
hour-multiple periods, paging and errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.api import metric_pb2
from google.api_core import exceptions
from google.cloud import monitoring_v3
from google.cloud.monitoring_v3.services.metric_service.transports import (
    MetricServiceGrpcTransport,
)

from costbot.emulators.gcp_monitoring import CPU_METRIC, MonitoringEmulator, parse_filter

P = "proj-alpha"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
CPU = f'metric.type = "{CPU_METRIC}"'
# Hours 0..5: means 0.1, 0.2, 0.3, 0.4, 0.5, 0.6; maxima 0.2, 0.9, 0.4, 0.5, 0.6, 0.7.
HOURLY = [
    (T0 + timedelta(hours=h), (h + 1) / 10, 0.9 if h == 1 else (h + 2) / 10) for h in range(6)
]


@pytest.fixture
def mon() -> Iterator[MonitoringEmulator]:
    with MonitoringEmulator() as emulator:
        emulator.set_cpu(P, "101", "vm-a", "us-central1-a", HOURLY)
        yield emulator


@pytest.fixture
def metrics(mon: MonitoringEmulator) -> Iterator[monitoring_v3.MetricServiceClient]:
    transport = MetricServiceGrpcTransport(channel=mon.channel())
    yield monitoring_v3.MetricServiceClient(transport=transport)
    transport.close()


def query(
    metrics: monitoring_v3.MetricServiceClient,
    *,
    filter_: str = CPU,
    hours: tuple[int, int] = (0, 6),
    aligner: str | None = None,
    period_h: int = 1,
    project: str = P,
    **extra: Any,
) -> list[monitoring_v3.TimeSeries]:
    request: dict[str, Any] = {
        "name": f"projects/{project}",
        "filter": filter_,
        "interval": {
            "start_time": T0 + timedelta(hours=hours[0]),
            "end_time": T0 + timedelta(hours=hours[1]),
        },
        **extra,
    }
    if aligner is not None:
        request["aggregation"] = {
            "per_series_aligner": aligner,
            "alignment_period": {"seconds": period_h * 3600},
        }
    return list(metrics.list_time_series(request=request, retry=None))


def points(series: monitoring_v3.TimeSeries) -> list[tuple[int, float]]:
    """(hours after T0 of the point's end time, value), in the order the API gave them."""
    return [
        (int((p.interval.end_time - T0) / timedelta(hours=1)), round(p.value.double_value, 6))
        for p in series.points
    ]


def test_align_mean_hourly_gives_the_means_newest_first(metrics) -> None:
    [series] = query(metrics, aligner="ALIGN_MEAN")
    assert points(series) == [(6, 0.6), (5, 0.5), (4, 0.4), (3, 0.3), (2, 0.2), (1, 0.1)]
    assert series.metric.type == CPU_METRIC and series.metric.labels == {"instance_name": "vm-a"}
    assert series.resource.type == "gce_instance"
    assert dict(series.resource.labels) == {
        "project_id": P,
        "instance_id": "101",
        "zone": "us-central1-a",
    }
    assert series.metric_kind == metric_pb2.MetricDescriptor.MetricKind.GAUGE
    assert series.value_type == metric_pb2.MetricDescriptor.ValueType.DOUBLE


def test_align_max_merges_hours_into_epoch_aligned_buckets(metrics) -> None:
    [series] = query(metrics, aligner="ALIGN_MAX", period_h=2)
    assert points(series) == [(6, 0.7), (4, 0.5), (2, 0.9)]
    [daily] = query(metrics, aligner="ALIGN_MAX", period_h=24)
    assert points(daily) == [(24, 0.9)]


def test_align_mean_over_a_period_is_the_mean_of_the_hourly_means(metrics) -> None:
    [series] = query(metrics, aligner="ALIGN_MEAN", period_h=3)
    assert points(series) == [(6, 0.5), (3, 0.2)]


def test_no_aggregation_or_align_none_gives_the_raw_means(metrics) -> None:
    [raw] = query(metrics)
    [none] = query(metrics, aligner="ALIGN_NONE")
    assert points(raw) == points(none) == [(h + 1, (h + 1) / 10) for h in reversed(range(6))]


def test_interval_is_start_inclusive_end_exclusive(metrics) -> None:
    [series] = query(metrics, hours=(2, 4), aligner="ALIGN_MEAN")
    assert points(series) == [(4, 0.4), (3, 0.3)]
    assert query(metrics, hours=(6, 9), aligner="ALIGN_MEAN") == []


def test_filter_selects_metric_and_instances(mon, metrics) -> None:
    mon.set_cpu(P, "102", "vm-b", "europe-west1-b", HOURLY[:2])
    mon.set_cpu("proj-other", "103", "vm-c", "us-central1-a", HOURLY)
    assert len(query(metrics)) == 2
    memory = 'metric.type = "compute.googleapis.com/instance/memory/balloon/ram_used"'
    assert query(metrics, filter_=memory) == []
    one = query(metrics, filter_=f'{CPU} AND resource.labels.instance_id = "102"')
    assert [s.resource.labels["instance_id"] for s in one] == ["102"]
    both = f'{CPU} AND resource.label.instance_id = one_of("101", "102", "999")'
    assert len(query(metrics, filter_=both)) == 2
    by_zone = f'{CPU} AND resource.labels.zone = "europe-west1-b"'
    assert [s.metric.labels["instance_name"] for s in query(metrics, filter_=by_zone)] == ["vm-b"]
    with pytest.raises(exceptions.InvalidArgument):
        query(metrics, filter_='resource.type = "gce_instance"')


def test_parse_filter_reads_equalities_and_one_of() -> None:
    text = (
        f'{CPU} AND resource.type="gce_instance" AND metric.label.instance_name = one_of("a","b")'
        ' AND resource.labels.zone != "x" AND metric.labels.x = starts_with("y")'
    )
    assert parse_filter(text) == {
        "metric.type": {CPU_METRIC},
        "resource.type": {"gce_instance"},
        "metric.labels.instance_name": {"a", "b"},
    }


def test_paging_follows_next_page_token(mon, metrics) -> None:
    for i in range(4):
        mon.set_cpu(P, str(200 + i), f"vm-{i}", "us-east1-b", HOURLY)
    mon.page_size = 2
    assert len(query(metrics)) == 5
    assert [r.page_token for r in mon.requests] == ["", "2", "4"]
    mon.requests.clear()
    assert len(query(metrics, page_size=1)) == 5
    assert [r.page_size for r in mon.requests] == [1] * 5


def test_failed_project_and_unsupported_aggregations_abort(mon, metrics) -> None:
    mon.fail_project(P, grpc.StatusCode.PERMISSION_DENIED, "monitoring.timeSeries.list denied")
    with pytest.raises(exceptions.PermissionDenied, match="denied"):
        query(metrics)
    mon.set_cpu("proj-ok", "1", "vm", "us-central1-a", HOURLY)
    with pytest.raises(exceptions.InvalidArgument, match="multiple of 3600s"):
        query(metrics, project="proj-ok", aligner="ALIGN_MEAN", period_h=0)
    with pytest.raises(exceptions.MethodNotImplemented):
        query(metrics, project="proj-ok", aligner="ALIGN_MIN")
    assert len(query(metrics, project="proj-ok", aligner="ALIGN_MEAN")) == 1


def test_set_cpu_rejects_naive_unaligned_or_inconsistent_samples(mon) -> None:
    for bad in [
        (datetime(2026, 11, 1), 0.1, 0.2),
        (T0 + timedelta(minutes=5), 0.1, 0.2),
        (T0, 0.5, 0.2),
        (T0, 0.5, 1.5),
    ]:
        with pytest.raises(ValueError):
            mon.set_cpu(P, "1", "vm", "us-central1-a", [bad])
