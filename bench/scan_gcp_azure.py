"""Benchmark: a GCP project and an Azure subscription with --resources resources each, scanned
through the real google-cloud-compute / monitoring and azure-mgmt clients against costbot's
emulators (costbot/emulators), in-process, end to end into a store.

Seeded per cloud: 40 % disks (half unattached for 30 days), 20 % public IPs (half unused),
40 % instances/VMs across 4 zones/locations, all oversized candidates with 14 days of hourly
CPU. Printed: wall time per cloud (collect + rules + store), findings, API requests by route,
peak RSS of this process (emulators included, so an upper bound for costbot itself).

Run: python bench/scan_gcp_azure.py --resources 10000
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from costbot.config import parse_config
from costbot.emulators.azure import AzureEmulator
from costbot.emulators.gcp import GcpEmulator
from costbot.emulators.gcp_monitoring import MonitoringEmulator
from costbot.model import Provider
from costbot.pricing.azure import AzurePriceBook
from costbot.pricing.gcp import GcpPriceBook
from costbot.providers.azure import AzureProvider
from costbot.providers.azure_clients import AzureClients
from costbot.providers.gcp import GcpProvider
from costbot.providers.gcp_clients import GcpClients
from costbot.scan import run_scan
from costbot.store import Store

PROJECT = "bench-project-1"
SUB = "00000000-0000-4000-8000-00000000beef"
ZONES = ("us-central1-a", "us-central1-b", "us-east1-b", "europe-west1-b")
ARM = f"/subscriptions/{SUB}/resourceGroups/rg/providers"
LOCATIONS = ("eastus", "westus2", "westeurope", "northeurope")


def rss_mib() -> float:
    """Peak resident set size of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hourly(now: datetime, days: int) -> list[tuple[datetime, float, float]]:
    """`days` of flat, low CPU (fractions 0..1 for GCP; the Azure seeding scales to %)."""
    end = now.replace(minute=0, second=0, microsecond=0)
    return [(end - timedelta(hours=h + 1), 0.03, 0.12) for h in range(days * 24)]


def seed_gcp(gcp: GcpEmulator, mon: MonitoringEmulator, n: int, now: datetime) -> None:
    """n resources in one project."""
    old = now - timedelta(days=60)
    cpu = hourly(now, 15)
    for i in range(n * 4 // 10):
        zone = ZONES[i % len(ZONES)]
        detach = {"last_attach": old, "last_detach": now - timedelta(days=30)}
        gcp.add_disk(PROJECT, zone, f"disk-{i}", created=old, **(detach if i % 2 else {}))
    for i in range(n * 2 // 10):
        region = ZONES[i % len(ZONES)].rsplit("-", 1)[0]
        status = "RESERVED" if i % 2 else "IN_USE"
        gcp.add_address(
            PROJECT,
            region,
            f"ip-{i}",
            address=f"34.{i // 250}.{i % 250}.1",
            status=status,
            created=old,
        )
    for i in range(n * 4 // 10):
        zone = ZONES[i % len(ZONES)]
        raw = gcp.add_instance(
            PROJECT, zone, f"vm-{i}", machine_type="n2-standard-8", created=old, last_start=old
        )
        mon.set_cpu(PROJECT, str(raw["id"]), f"vm-{i}", zone, cpu)


def seed_azure(azure: AzureEmulator, n: int, now: datetime) -> None:
    """n resources in one subscription."""
    old = now - timedelta(days=60)
    cpu = [(h, a * 100, m * 100) for h, a, m in hourly(now, 15)]
    for i in range(n * 4 // 10):
        loc = LOCATIONS[i % len(LOCATIONS)]
        azure.add_disk(
            SUB, "rg", f"disk-{i}", loc, created=old, last_ownership_update=now - timedelta(days=30)
        )
    for i in range(n * 2 // 10):
        loc = LOCATIONS[i % len(LOCATIONS)]
        nic = (
            None if i % 2 else f"{ARM}/Microsoft.Network/networkInterfaces/n{i}/ipConfigurations/c"
        )
        azure.add_public_ip(
            SUB, "rg", f"ip-{i}", loc, ip=f"20.{i // 250}.{i % 250}.1", ip_configuration=nic
        )
    for i in range(n * 4 // 10):
        loc = LOCATIONS[i % len(LOCATIONS)]
        vm = azure.add_vm(SUB, "rg", f"vm-{i}", loc, size="Standard_D8s_v5", created=old)
        azure.set_cpu(vm, cpu)


def main() -> None:
    """Seed, scan each cloud once, print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--resources", type=int, default=2000)
    args = parser.parse_args()
    now = datetime.now(UTC)
    work = Path(tempfile.mkdtemp(prefix="costbot-bench-"))
    with GcpEmulator() as gcp, MonitoringEmulator() as mon, AzureEmulator() as azure:
        gcp.page_size = azure.page_size = 500
        t = time.perf_counter()
        seed_gcp(gcp, mon, args.resources, now)
        seed_azure(azure, args.resources, now)
        print(
            f"seeded {args.resources} resources per cloud in {time.perf_counter() - t:.1f}s; "
            f"RSS {rss_mib():.0f} MiB"
        )
        config = parse_config(  # YAML text, as a user would write it
            yaml.safe_dump(
                {
                    "providers": {
                        "gcp": {
                            "projects": [PROJECT],
                            "credentials": "anonymous",
                            "endpoints": {"compute": gcp.endpoint},
                        },
                        "azure": {
                            "subscriptions": [SUB],
                            "management_endpoint": azure.endpoint,
                            "ca_bundle": str(azure.ca_path),
                        },
                    },
                    "store": {"path": str(work / "bench.db")},
                }
            ),
            "bench",
        )
        store = Store(work / "bench.db")
        rule = config.rules.oversized_instance
        assert config.providers.gcp is not None and config.providers.azure is not None
        runs = [
            (
                "gcp",
                GcpProvider(
                    config.providers.gcp,
                    rule,
                    clients=GcpClients(config.providers.gcp, monitoring_channel=mon.channel),
                ),
                {Provider.GCP: GcpPriceBook(live=False)},
                gcp.requests,
                mon.requests,
            ),
            (
                "azure",
                AzureProvider(
                    config.providers.azure,
                    rule,
                    clients=AzureClients(
                        config.providers.azure, credential=azure.credential(), retry_total=0
                    ),
                ),
                {Provider.AZURE: AzurePriceBook(live=False)},
                azure.requests,
                [],
            ),
        ]
        for name, adapter, prices, http_log, grpc_log in runs:
            before_http, before_grpc = len(http_log), len(grpc_log)
            t = time.perf_counter()
            report = run_scan(config, store, [adapter], prices, now=now)
            wall = time.perf_counter() - t
            routes = Counter(
                "/".join(part for part in r.path.split("/")[-2:] if not part.startswith("disk-"))
                if name == "gcp"
                else r.path.split("/providers/")[-1].split("/")[0:2][-1]
                for r in http_log[before_http:]
            )
            print(
                f"{name}: scan {wall:.1f}s wall, {len(report.findings)} findings, "
                f"{len(http_log) - before_http} HTTP requests + {len(grpc_log) - before_grpc} "
                f"gRPC, failed units: {[u.error for u in report.failed]}, RSS {rss_mib():.0f} MiB"
            )
            print(f"  requests by route: {dict(routes.most_common(8))}")
            print(f"  findings by kind: {dict(Counter(str(f.kind) for f in report.findings))}")
            skipped = sum((u.skipped for u in report.units), Counter())
            print(f"  not judged: {dict(skipped.most_common(3))}")


if __name__ == "__main__":
    main()
