"""The demo's Google Cloud and Azure: costbot's own emulators of the documented APIs (Compute +
Billing REST, Monitoring gRPC, ARM + Retail Prices over https), seeded with a small estate that
holds every trap of shared/docs/domain.md, and the config fragment that points costbot at them.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from typing import Any

from costbot.errors import ConfigError

GCP_PROJECT = "costbot-demo-project"
AZURE_SUBSCRIPTION = "00000000-0000-4000-8000-0000000000de"
AZURE_GROUP = "demo-rg"
LOOKBACK_DAYS = 14


@contextmanager
def emulated_gcp_azure(now: datetime) -> Iterator[dict[str, Any]]:
    """Start and seed the emulators; yield the `providers.gcp` / `providers.azure` config."""
    try:
        from costbot.emulators.azure import AzureEmulator
        from costbot.emulators.gcp import GcpEmulator
        from costbot.emulators.gcp_monitoring import MonitoringEmulator
    except ImportError as exc:  # trustme (https for the Azure emulator) is in the demo extra
        raise ConfigError(f"costbot demo needs: pip install 'costbot[demo]' ({exc})") from None
    saved = os.environ.get("AZURE_ACCESS_TOKEN")
    with ExitStack() as stack:
        gcp = stack.enter_context(GcpEmulator())
        monitoring = stack.enter_context(MonitoringEmulator())
        azure = stack.enter_context(AzureEmulator())
        seed_gcp(gcp, monitoring, now)
        seed_azure(azure, now)
        os.environ["AZURE_ACCESS_TOKEN"] = "demo-token"
        try:
            yield {
                "gcp": {
                    "projects": [GCP_PROJECT],
                    "credentials": "anonymous",
                    "recommender": True,
                    "endpoints": {
                        "compute": gcp.endpoint,
                        "billing": gcp.endpoint,
                        "resource_manager": gcp.endpoint,
                        "recommender": gcp.endpoint,
                        "monitoring": monitoring.target,
                        "monitoring_insecure": True,
                    },
                },
                "azure": {
                    "subscriptions": [AZURE_SUBSCRIPTION],
                    "management_endpoint": azure.endpoint,
                    "retail_prices_endpoint": azure.endpoint,
                    "credential": "env_token",
                    "ca_bundle": str(azure.ca_path),
                },
            }
        finally:
            if saved is None:
                os.environ.pop("AZURE_ACCESS_TOKEN", None)
            else:
                os.environ["AZURE_ACCESS_TOKEN"] = saved


def _hours(
    now: datetime, avg: float, peak: float, rng: random.Random
) -> list[tuple[datetime, float, float]]:
    """14 days of hourly (hour, mean, max) percentages around `avg`, touching `peak` once."""
    end = now.replace(minute=0, second=0, microsecond=0)
    hours = (LOOKBACK_DAYS + 10) * 24  # the demo's first scan runs 8 days "ago"
    spike = rng.randrange(hours)
    points = []
    for h in range(hours):
        mean = max(0.1, avg * rng.uniform(0.8, 1.2))
        top = peak if h == spike else min(peak, mean * rng.uniform(1.1, 1.6))
        points.append((end - timedelta(hours=hours - h), mean, max(top, mean)))
    return points


def seed_gcp(gcp: Any, monitoring: Any, now: datetime) -> None:
    """Disks, addresses and instances in two zones of one project, with their CPU history."""
    p, zone, eu = GCP_PROJECT, "us-central1-a", "europe-west1-b"
    rng = random.Random(p)
    old = now - timedelta(days=120)
    fleet: list[tuple[str, str, str, int, int, dict[str, Any]]] = [  # name, zone, type, avg, peak
        ("api-server", zone, "n2-standard-8", 4, 18, {}),
        ("web-1", zone, "e2-standard-4", 55, 90, {}),
        (
            "batch-mig-x1z",
            zone,
            "n2-standard-4",
            3,
            10,
            {"created_by": f"projects/{p}/zones/{zone}/instanceGroupManagers/batch"},
        ),
        ("jumpbox", zone, "e2-small", 1, 5, {}),
        ("etl-custom", eu, "n2-custom-4-16384", 2, 8, {}),
        ("analytics-eu", eu, "n2-highmem-16", 6, 25, {}),
    ]
    for name, where, machine_type, avg, peak, extra in fleet:
        raw = gcp.add_instance(
            p, where, name, machine_type=machine_type, created=old, last_start=old, **extra
        )
        hours = [(h, m / 100, x / 100) for h, m, x in _hours(now, avg, peak, rng)]
        monitoring.set_cpu(p, str(raw["id"]), name, where, hours)
    gcp.add_instance(
        p,
        zone,
        "legacy-app",
        machine_type="n1-standard-4",
        status="TERMINATED",
        created=old,
        last_stop=now - timedelta(days=45),
    )
    disks: list[tuple[str, str, int, str, dict[str, Any]]] = [
        (
            "old-build-cache",
            zone,
            500,
            "pd-standard",
            {"last_attach": old, "last_detach": now - timedelta(days=40)},
        ),
        ("never-attached-ssd", zone, 200, "pd-ssd", {"created": now - timedelta(days=30)}),
        (
            "recently-detached",
            zone,
            100,
            "pd-balanced",
            {"last_attach": old, "last_detach": now - timedelta(days=2)},
        ),
        (
            "gke-pvc-3f1c",
            zone,
            50,
            "pd-balanced",
            {
                "labels": {"goog-k8s-cluster-name": "prod"},
                "last_attach": old,
                "last_detach": now - timedelta(days=20),
            },
        ),
        ("golden-image-src", eu, 100, "pd-ssd", {"labels": {"costbot-skip": "owner-on-leave"}}),
        (
            "api-server-data",
            zone,
            200,
            "pd-balanced",
            {"users": ["api-server"], "last_attach": old},
        ),
        (
            "legacy-app-data",
            zone,
            300,
            "pd-standard",
            {"users": ["legacy-app"], "last_attach": old},
        ),
    ]
    for name, where, size, disk_type, extra in disks:
        gcp.add_disk(p, where, name, size_gb=size, disk_type=disk_type, **{"created": old, **extra})
    gcp.add_address(p, "us-central1", "old-lb-ip", address="34.120.10.1", created=old)
    seed_recommendations(gcp, now)
    gcp.add_address(p, None, "legacy-global-ip", address="34.117.20.2", created=old)
    gcp.add_address(
        p, "us-central1", "db-internal", address="10.0.0.5", address_type="INTERNAL", created=old
    )
    gcp.add_address(
        p,
        "europe-west1",
        "web-ip",
        address="34.76.3.3",
        status="IN_USE",
        users=[f"projects/{p}/zones/{eu}/instances/web-1"],
        created=old,
    )


def seed_azure(azure: Any, now: datetime) -> None:
    """Managed disks, public IPs and VMs in two locations of one subscription, with CPU."""
    s, g = AZURE_SUBSCRIPTION, AZURE_GROUP
    arm = f"/subscriptions/{s}/resourceGroups/{g}/providers"
    rng = random.Random(s)
    old = now - timedelta(days=120)
    azure.add_disk(
        s,
        g,
        "orphan-data",
        "eastus",
        size_gb=256,
        created=old,
        last_ownership_update=now - timedelta(days=20),
    )
    azure.add_disk(
        s,
        g,
        "nightly-export",
        "eastus",
        size_gb=128,
        sku="StandardSSD_LRS",
        created=old,
        last_ownership_update=now - timedelta(days=2),
    )
    azure.add_disk(
        s,
        g,
        "sql01-osdisk-ASRReplica",
        "westeurope",
        size_gb=128,
        created=old,
        last_ownership_update=now - timedelta(days=60),
    )
    azure.add_disk(
        s,
        g,
        "archive-hdd",
        "westeurope",
        size_gb=1024,
        sku="Standard_LRS",
        tags={"costbot:skip": "legal hold"},
        created=old,
        last_ownership_update=now - timedelta(days=90),
    )
    app_disk = azure.add_disk(s, g, "app-vm-data", "eastus", size_gb=512, created=old)
    legacy_disk = azure.add_disk(s, g, "legacy-vm-data", "eastus", size_gb=256, created=old)
    fleet: list[tuple[str, str, str, int, int, dict[str, Any]]] = [  # name, where, size, avg, peak
        ("app-vm", "eastus", "Standard_D8s_v5", 4, 20, {"data_disks": [app_disk]}),
        ("busy-vm", "eastus", "Standard_D4s_v5", 60, 95, {}),
        ("burst-vm", "westeurope", "Standard_B2s", 2, 10, {}),
        (
            "worker-vmss_0",
            "westeurope",
            "Standard_E8s_v5",
            3,
            12,
            {"scale_set": f"{arm}/Microsoft.Compute/virtualMachineScaleSets/worker"},
        ),
    ]
    for name, location, size, avg, peak, extra in fleet:
        vm = azure.add_vm(s, g, name, location, size=size, created=old, **extra)
        azure.set_cpu(vm, _hours(now, avg, peak, rng))
    azure.add_vm(
        s,
        g,
        "legacy-vm",
        "eastus",
        size="Standard_D4s_v5",
        power_state="deallocated",
        created=old,
        power_changed=now - timedelta(days=60),
        data_disks=[legacy_disk],
    )
    nic = f"{arm}/Microsoft.Network/networkInterfaces/app-nic/ipConfigurations/ipconfig1"
    azure.add_public_ip(s, g, "old-gateway-ip", "eastus", ip="20.42.1.1")
    azure.add_public_ip(s, g, "basic-test-ip", "westeurope", ip="20.50.2.2", sku="Basic")
    azure.add_public_ip(s, g, "app-vm-ip", "eastus", ip="20.42.3.3", ip_configuration=nic)
    azure.add_public_ip(
        s,
        g,
        "nat-egress-ip",
        "eastus",
        ip="20.42.4.4",
        nat_gateway=f"{arm}/Microsoft.Network/natGateways/egress",
    )


def _recommendation(resource: str, subtype: str, text: str, monthly_usd: float) -> dict[str, Any]:
    return {
        "name": f"projects/{GCP_PROJECT}/locations/-/recommenders/-/recommendations/{subtype}-1",
        "description": text,
        "recommenderSubtype": subtype,
        "primaryImpact": {
            "category": "COST",
            "costProjection": {
                "cost": {"currencyCode": "USD", "units": str(-int(monthly_usd))},
                "duration": "2592000s",
            },
        },
        "stateInfo": {"state": "ACTIVE"},
        "content": {
            "overview": {
                "resourceName": f"//compute.googleapis.com/projects/{GCP_PROJECT}/{resource}"
            }
        },
    }


def seed_recommendations(gcp: Any, now: datetime) -> None:
    """Google's own verdicts on two resources, shown beside costbot's as a second opinion."""
    from costbot.providers import gcp_recommender as rec

    zone = "us-central1-a"
    gcp.add_recommendation(
        GCP_PROJECT,
        zone,
        rec.DISKS,
        _recommendation(
            f"zones/{zone}/disks/old-build-cache",
            "SNAPSHOT_AND_DELETE_DISK",
            "Save cost by snapshotting and then deleting idle persistent disk 'old-build-cache'.",
            20,
        ),
    )
    machine = _recommendation(
        f"zones/{zone}/instances/api-server",
        "CHANGE_MACHINE_TYPE",
        "Save cost by changing machine type from n2-standard-8 to n2-standard-2.",
        160,
    )
    machine["content"]["overview"]["recommendedMachineType"] = {"name": "n2-standard-2"}
    gcp.add_recommendation(GCP_PROJECT, zone, rec.MACHINE_TYPES, machine)
