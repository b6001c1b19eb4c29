"""A local emulator of Cloud Monitoring's MetricService.ListTimeSeries for the GCE CPU
utilization metric: an in-process, insecure gRPC server on 127.0.0.1 that the real
google-cloud-monitoring client reaches through an injected channel.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

import grpc
from google.cloud import monitoring_v3

CPU_METRIC = "compute.googleapis.com/instance/cpu/utilization"
HOUR = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Aligner = monitoring_v3.Aggregation.Aligner
PROJECT_NAME = re.compile(r"projects/([^/]+)")
# Filter support: `metric.type`, `resource.type`, `resource.labels.K` and `metric.labels.K`
# (also spelled `.label.`) compared with `= "v"` or `= one_of("a", "b")`. All such clauses must
# hold (as if joined by AND); every other construct (OR, NOT, !=, starts_with, ...) is ignored.
# metric.type is required; only compute.googleapis.com/instance/cpu/utilization has data.
CLAUSE = re.compile(
    r"(metric\.type|resource\.type|(?:resource|metric)\.labels?\.\w+)\s*=\s*"
    r'(?:"([^"]*)"|one_of\(([^)]*)\))'
)
QUOTED = re.compile(r'"([^"]*)"')


@dataclass
class _Series:
    """One instance's hourly CPU samples: hour start (UTC) -> (mean, max), fractions of 1."""

    project: str
    instance_id: str
    instance_name: str
    zone: str
    hourly: dict[datetime, tuple[float, float]] = field(default_factory=dict)

    def labels(self) -> dict[str, str]:
        """The filterable fields of the series, named as in a filter."""
        return {
            "metric.type": CPU_METRIC,
            "metric.labels.instance_name": self.instance_name,
            "resource.type": "gce_instance",
            "resource.labels.project_id": self.project,
            "resource.labels.instance_id": self.instance_id,
            "resource.labels.zone": self.zone,
        }


def parse_filter(text: str) -> dict[str, set[str]]:
    """The `field = "v"` / `field = one_of("a", ...)` clauses of a filter as field -> values."""
    clauses: dict[str, set[str]] = {}
    for match in CLAUSE.finditer(text):
        name = re.sub(r"\.label\.", ".labels.", match.group(1))
        values = {match.group(2)} if match.group(2) is not None else set()
        clauses[name] = values | set(QUOTED.findall(match.group(3) or ""))
    return clauses


def _bucket(hour: datetime, period: timedelta) -> datetime:
    """Start of the epoch-aligned bucket of `period` holding `hour`."""
    return EPOCH + (hour - EPOCH) // period * period


class MonitoringEmulator:
    """ListTimeSeries over insecure gRPC; clients use MetricServiceGrpcTransport(mon.channel())."""

    def __init__(self) -> None:
        self.page_size: int = 100
        self.requests: list[monitoring_v3.ListTimeSeriesRequest] = []
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], _Series] = {}
        self._failures: dict[str, tuple[grpc.StatusCode, str]] = {}
        self._server: Any = None
        self._executor: futures.ThreadPoolExecutor | None = None
        self._port = 0

    def start(self) -> Self:
        """Serve on 127.0.0.1 on a free port (insecure)."""
        handler = grpc.method_handlers_generic_handler(
            "google.monitoring.v3.MetricService",
            {
                "ListTimeSeries": grpc.unary_unary_rpc_method_handler(
                    self._list_time_series,
                    request_deserializer=monitoring_v3.ListTimeSeriesRequest.deserialize,
                    response_serializer=monitoring_v3.ListTimeSeriesResponse.serialize,
                )
            },
        )
        self._executor = futures.ThreadPoolExecutor(8, thread_name_prefix="monitoring-emulator")
        self._server = grpc.server(self._executor)
        self._server.add_generic_rpc_handlers((handler,))
        self._port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving (cancelling calls in flight) and release the worker threads."""
        if self._server is not None and self._executor is not None:
            self._server.stop(None).wait()
            self._executor.shutdown(wait=True)
        self._server = self._executor = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def target(self) -> str:
        """The gRPC target: "127.0.0.1:PORT"."""
        if self._server is None:
            raise RuntimeError("MonitoringEmulator is not running: call start() or use `with`")
        return f"127.0.0.1:{self._port}"

    def channel(self) -> grpc.Channel:
        """A new insecure channel to the emulator (the caller closes it)."""
        return grpc.insecure_channel(self.target)

    def set_cpu(
        self,
        project: str,
        instance_id: str,
        instance_name: str,
        zone: str,
        hourly: Sequence[tuple[datetime, float, float]],
    ) -> None:
        """Seed (replace) an instance's CPU: (tz-aware hour start, mean, max), 0<=mean<=max<=1."""
        samples: dict[datetime, tuple[float, float]] = {}
        for hour, mean, peak in hourly:
            if hour.tzinfo is None or hour.timestamp() % 3600:
                raise ValueError(f"hour {hour!r} must be tz-aware and on the hour")
            if not 0 <= mean <= peak <= 1:
                raise ValueError(f"need 0 <= mean <= max <= 1, got {mean}, {peak} at {hour}")
            samples[hour.astimezone(UTC)] = (mean, peak)
        with self._lock:
            self._series[(project, instance_id)] = _Series(
                project, instance_id, instance_name, zone, samples
            )

    def fail_project(self, project: str, code: grpc.StatusCode, message: str) -> None:
        """Make ListTimeSeries on projects/{project} abort with this status."""
        with self._lock:
            self._failures[project] = (code, message)

    def _list_time_series(
        self, request: monitoring_v3.ListTimeSeriesRequest, context: grpc.ServicerContext
    ) -> monitoring_v3.ListTimeSeriesResponse:
        with self._lock:
            self.requests.append(request)
            try:
                return self._answer(request)
            except _Abort as abort:
                failure = abort
        context.abort(failure.code, failure.message)
        raise AssertionError("context.abort() returned")

    def _answer(
        self, request: monitoring_v3.ListTimeSeriesRequest
    ) -> monitoring_v3.ListTimeSeriesResponse:
        name = PROJECT_NAME.fullmatch(request.name)
        if name is None:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad name {request.name!r}")
        if name.group(1) in self._failures:
            raise _Abort(*self._failures[name.group(1)])
        clauses = parse_filter(request.filter)
        if "metric.type" not in clauses:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, 'filter needs metric.type = "..."')
        if request.interval.end_time is None:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "interval.end_time is required")
        end = request.interval.end_time
        start = request.interval.start_time or end
        period = self._period(request.aggregation)
        series = [
            each
            for key, each in sorted(self._series.items(), key=lambda item: item[0])
            if key[0] == name.group(1)
            and all(each.labels().get(k) in values for k, values in clauses.items())
        ]
        try:
            first = int(request.page_token or 0)
        except ValueError:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "bad page_token") from None
        size = min(self.page_size, request.page_size or self.page_size)
        built: list[monitoring_v3.TimeSeries] = []
        index = first  # the token is the index of the next series to look at: pages cost O(page)
        while index < len(series) and len(built) < size:
            answer = self._time_series(series[index], start, end, request.aggregation, period)
            if answer is not None:
                built.append(answer)
            index += 1
        more = any(self._has_points(each, start, end) for each in series[index:])
        token = str(index) if more else ""
        return monitoring_v3.ListTimeSeriesResponse(
            time_series=built, next_page_token=token, unit="10^2.%"
        )

    @staticmethod
    def _period(aggregation: monitoring_v3.Aggregation) -> timedelta:
        if aggregation.cross_series_reducer != monitoring_v3.Aggregation.Reducer.REDUCE_NONE:
            raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "the emulator has no cross-series reducers")
        if aggregation.per_series_aligner == Aligner.ALIGN_NONE:
            return HOUR
        if aggregation.per_series_aligner not in (Aligner.ALIGN_MEAN, Aligner.ALIGN_MAX):
            raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "the emulator aligns by MEAN or MAX only")
        period: timedelta = aggregation.alignment_period
        if period <= timedelta(0) or period % HOUR:
            message = f"alignment_period {period} must be a positive multiple of 3600s"
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, message)
        return period

    @staticmethod
    def _has_points(series: _Series, start: datetime, end: datetime) -> bool:
        return any(start <= hour < end for hour in series.hourly)

    @staticmethod
    def _time_series(
        series: _Series,
        start: datetime,
        end: datetime,
        aggregation: monitoring_v3.Aggregation,
        period: timedelta,
    ) -> monitoring_v3.TimeSeries | None:
        buckets: dict[datetime, list[tuple[float, float]]] = {}
        for hour, sample in series.hourly.items():
            if start <= hour < end:
                buckets.setdefault(_bucket(hour, period), []).append(sample)
        if not buckets:
            return None
        points = []
        for bucket in sorted(buckets, reverse=True):
            samples = buckets[bucket]
            if aggregation.per_series_aligner == Aligner.ALIGN_MAX:
                value = max(peak for _, peak in samples)
            else:
                value = sum(mean for mean, _ in samples) / len(samples)
            moment = bucket + period
            interval = monitoring_v3.TimeInterval(start_time=moment, end_time=moment)
            points.append(
                monitoring_v3.Point(
                    interval=interval, value=monitoring_v3.TypedValue(double_value=value)
                )
            )
        return monitoring_v3.TimeSeries(
            metric={"type": CPU_METRIC, "labels": {"instance_name": series.instance_name}},
            resource={
                "type": "gce_instance",
                "labels": {
                    "project_id": series.project,
                    "instance_id": series.instance_id,
                    "zone": series.zone,
                },
            },
            metric_kind="GAUGE",
            value_type="DOUBLE",
            points=points,
            unit="10^2.%",
        )


class _Abort(Exception):
    """A gRPC status to abort the call with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
