"""Google's Recommender as a second opinion on GCP findings: the idle-disk, idle-address and
machine-type recommenders' ACTIVE recommendations, keyed by the resource they are about.

Best effort by design: a location whose Recommender call fails is logged and skipped, never a
failed scan (costbot's own rules decide; Google's verdict is shown beside them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from costbot.model import HOURS_PER_MONTH
from costbot.providers.gcp_clients import GcpClients, gcp_errors

log = logging.getLogger(__name__)

SOURCE = "gcp-recommender"
DISKS = "google.compute.disk.IdleResourceRecommender"
ADDRESSES = "google.compute.address.IdleResourceRecommender"
MACHINE_TYPES = "google.compute.instance.MachineTypeRecommender"


def second_opinions(
    clients: GcpClients,
    project: str,
    wanted: Mapping[str, Iterable[str]],
    retry: Any,
) -> dict[str, dict[str, Any]]:
    """{relative resource name: opinion} from each recommender in each of its locations."""
    from costbot.errors import ProviderError

    opinions: dict[str, dict[str, Any]] = {}
    client = clients.recommender()
    for recommender, locations in wanted.items():
        for location in sorted(set(locations)):
            parent = f"projects/{project}/locations/{location}/recommenders/{recommender}"
            try:
                with gcp_errors(project, "recommender.recommendations.list", location):
                    for found in client.list_recommendations(
                        request={"parent": parent, "filter": "stateInfo.state = ACTIVE"},
                        retry=retry,
                    ):
                        resource, opinion = _opinion(recommender, found)
                        if resource:
                            opinions.setdefault(resource, opinion)
            except ProviderError as exc:
                log.warning(
                    "recommender unavailable",
                    extra={"project": project, "location": location, "error": str(exc)},
                )
    return opinions


def _opinion(recommender: str, found: Any) -> tuple[str, dict[str, Any]]:
    overview = dict(found.content.overview) if found.content else {}
    name = str(overview.get("resourceName") or next(iter(found.target_resources), ""))
    index = name.find("projects/")
    opinion: dict[str, Any] = {
        "source": SOURCE,
        "recommender": recommender,
        "subtype": found.recommender_subtype,
        "summary": found.description,
        "name": found.name,
    }
    savings = _monthly_savings(found)
    if savings is not None:
        opinion["monthly_savings_usd"] = round(savings, 2)
    machine_type = overview.get("recommendedMachineType")
    if isinstance(machine_type, Mapping) and machine_type.get("name"):
        opinion["recommended_type"] = str(machine_type["name"])
    return (name[index:] if index >= 0 else ""), opinion


def _monthly_savings(found: Any) -> float | None:
    projection = found.primary_impact.cost_projection
    seconds = projection.duration.total_seconds() if projection.duration else 0
    if not seconds or projection.cost.currency_code not in ("", "USD"):
        return None
    cost = projection.cost.units + projection.cost.nanos / 1e9
    return float(-cost * HOURS_PER_MONTH * 3600 / seconds)
