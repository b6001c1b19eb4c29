"""The emulator's Azure Monitor metrics: per resource and subscription-scope (one series per
VM, split by Microsoft.ResourceId), from hourly CPU seeded with set_cpu()."""

from __future__ import annotations

import re
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

from costbot.emulators.azure_state import ArmState, RecordedRequest, Reply, error

_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?", re.IGNORECASE)
_MAX_POINTS = 50_000
CPU_METRIC = "Percentage CPU"


def not_found(path: str) -> Reply:
    """ARM's 404 answer for a resource path."""
    return Reply(404, error("ResourceNotFound", f"The Resource '{path}' was not found."))


def dig(body: Any, *keys: str) -> Any:
    """body[k1][k2]..., or None where a level is missing or not an object."""
    for key in keys:
        body = body.get(key) if isinstance(body, dict) else None
    return body


def _hours(duration: str) -> int:
    """Whole hours in an ISO 8601 duration; ValueError unless a positive multiple of PT1H."""
    match = _DURATION.fullmatch(duration)
    if match is None or duration.upper() in ("P", "PT"):
        raise ValueError(f"unsupported interval {duration!r}")
    days, hours, minutes = (int(group or 0) for group in match.groups())
    total = (days * 24 + hours) * 60 + minutes
    if total <= 0 or total % 60:
        raise ValueError(
            f"the emulator keeps hourly data; interval must be a multiple of PT1H: {duration}"
        )
    return total // 60


def _timespan(text: str) -> tuple[datetime, datetime]:
    start_text, _, end_text = text.partition("/")
    start, end = datetime.fromisoformat(start_text), datetime.fromisoformat(end_text)
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    if end <= start:
        raise ValueError(f"timespan ends before it starts: {text}")
    return start, end


class MetricsRoutes(ArmState):
    """Routes for Microsoft.Insights/metrics."""

    def _metrics(self, request: RecordedRequest, resource: str) -> Reply:
        key = "/" + resource.strip("/").lower()
        subscription_scope = key.count("/") == 2  # /subscriptions/{id}: many VMs in one call
        stores: list[Any] = [self._disks, self._ips, self._vms, self._snapshots, self._cpu]
        if not subscription_scope and not any(key in store for store in stores):
            return not_found("/" + resource.strip("/"))
        names = [n.strip() for n in request.query.get("metricnames", CPU_METRIC).split(",")]
        wanted = [a.strip().lower() for a in request.query.get("aggregation", "Average").split(",")]
        interval = request.query.get("interval", "PT1H")
        try:
            unknown = [name for name in names if name.lower() != CPU_METRIC.lower()]
            if unknown:
                raise ValueError(
                    f"Failed to find metric configuration for metric: {unknown[0]}, "
                    f"Valid metrics: {CPU_METRIC}"
                )
            if set(wanted) - {"average", "maximum"}:
                raise ValueError(f"the emulator keeps Average and Maximum only, not {wanted}")
            step = timedelta(hours=_hours(interval))
            start, end = _timespan(request.query["timespan"])
            if (end - start) / step > _MAX_POINTS:
                raise ValueError("Query timespan holds too many data points.")
        except (KeyError, ValueError) as exc:
            return Reply(400, error("BadRequest", f"Invalid metrics query: {exc}"))
        timeseries = []
        if subscription_scope:
            chosen = self._regional_vms(request)
            if isinstance(chosen, Reply):
                return chosen
            for vm_id in chosen:
                timeseries.append(
                    {
                        "metadatavalues": [
                            {
                                "name": {"value": RESOURCE_ID_DIMENSION},
                                "value": self._vms[vm_id].doc["id"],
                            }
                        ],
                        "data": _buckets(self._cpu[vm_id], start, end, step, wanted),
                    }
                )
        elif series := self._cpu.get(key):
            timeseries.append(
                {"metadatavalues": [], "data": _buckets(series, start, end, step, wanted)}
            )
        value = {
            "id": f"/{resource.strip('/')}/providers/Microsoft.Insights/metrics/{CPU_METRIC}",
            "type": "Microsoft.Insights/metrics",
            "name": {"value": CPU_METRIC, "localizedValue": CPU_METRIC},
            "displayDescription": "The percentage of allocated compute units in use.",
            "unit": "Percent",
            "timeseries": timeseries,
            "errorCode": "Success",
        }
        return Reply(
            200,
            {
                "cost": 0,
                "timespan": request.query["timespan"],
                "interval": interval,
                "value": [value],
                "namespace": "Microsoft.Compute/virtualMachines",
            },
        )

    def _regional_vms(self, request: RecordedRequest) -> list[str] | Reply:
        """Subscription-scope metrics: the VMs of `region` with data, at most `top` of them."""
        region = request.query.get("region", "").lower()
        namespace = request.query.get("metricnamespace", "").lower()
        where = request.query.get("$filter", "").replace(" ", "").lower()
        if not region or namespace != "microsoft.compute/virtualmachines":
            message = "region and metricnamespace=Microsoft.Compute/virtualMachines are required"
            return Reply(400, error("BadRequest", message))
        if where != f"{RESOURCE_ID_DIMENSION.lower()}eq'*'":
            message = (
                "the emulator answers one series per VM only ($filter=Microsoft.ResourceId eq '*')"
            )
            return Reply(400, error("BadRequest", message))
        chosen = sorted(
            vm_id
            for vm_id, vm in self._vms.items()
            if vm.doc["location"].lower() == region and vm_id in self._cpu
        )
        return chosen[: int(request.query.get("top", "10"))]


RESOURCE_ID_DIMENSION = "Microsoft.ResourceId"


def _buckets(
    series: list[tuple[datetime, float, float]],
    start: datetime,
    end: datetime,
    step: timedelta,
    wanted: list[str],
) -> list[dict[str, Any]]:
    """Every interval of the timespan; the ones with data carry the wanted aggregations."""
    points = []
    moment = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while moment < end:
        inside = [(avg, peak) for hour, avg, peak in series if moment <= hour < moment + step]
        point: dict[str, Any] = {"timeStamp": moment.strftime("%Y-%m-%dT%H:%M:%SZ")}
        if inside and "average" in wanted:
            point["average"] = statistics.fmean(avg for avg, _ in inside)
        if inside and "maximum" in wanted:
            point["maximum"] = max(peak for _, peak in inside)
        points.append(point)
        moment += step
    return points
