"""Static data behind the Azure emulator: the VM size catalogue every location offers and the
Retail Prices API items (Nov 2026 list prices for eastus and westeurope) seeded at start.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, NamedTuple

REGIONS = {"eastus": ("US East", 1.0), "westeurope": ("EU West", 1.1)}
EFFECTIVE = "2026-11-01T00:00:00Z"
_SERVICE_IDS = {
    "Virtual Machines": ("DZH313Z7MMC8", "Compute"),
    "Storage": ("DZH317F1HKN0", "Storage"),
    "Virtual Network": ("DZH3180N7ZCS", "Networking"),
}
_OS_DISK_MB = 1047552
_DISK_STEPS = {2: 4, 4: 8, 8: 16, 16: 32, 32: 32, 48: 32, 64: 32, 72: 32, 96: 32}


class VmSize(NamedTuple):
    """One VM size: its ARM shape plus the Linux list price per hour in eastus."""

    name: str
    cores: int
    memory_mb: int
    max_data_disks: int
    resource_disk_mb: int
    linux_hourly: float
    product: str

    def arm(self) -> dict[str, Any]:
        """The size as `vmSizes` lists it."""
        return {
            "name": self.name,
            "numberOfCores": self.cores,
            "osDiskSizeInMB": _OS_DISK_MB,
            "resourceDiskSizeInMB": self.resource_disk_mb,
            "memoryInMB": self.memory_mb,
            "maxDataDiskCount": self.max_data_disks,
        }


def _family(
    letter: str, suffix: str, cores: list[int], gib_per_core: int, per_two: float, product: str
) -> list[VmSize]:
    temp_disk = 8192 if suffix == "s_v2" else 0
    return [
        VmSize(
            f"Standard_{letter}{n}{suffix}",
            n,
            n * gib_per_core * 1024,
            _DISK_STEPS[n],
            n * temp_disk,
            round(per_two * n / 2, 6),
            product,
        )
        for n in cores
    ]


_V5_CORES = [2, 4, 8, 16, 32, 48, 64, 96]
VM_SIZES: tuple[VmSize, ...] = (
    *_family("D", "s_v5", _V5_CORES, 4, 0.096, "DSv5"),
    *_family("D", "as_v5", _V5_CORES, 4, 0.086, "DASv5"),
    *_family("E", "s_v5", _V5_CORES, 8, 0.126, "ESv5"),
    *_family("F", "s_v2", [2, 4, 8, 16, 32, 48, 64, 72], 2, 0.0846, "FSv2"),
    VmSize("Standard_B1s", 1, 1024, 2, 4096, 0.0104, "BS"),
    VmSize("Standard_B1ms", 1, 2048, 2, 4096, 0.0207, "BS"),
    VmSize("Standard_B2s", 2, 4096, 4, 8192, 0.0416, "BS"),
    VmSize("Standard_B2ms", 2, 8192, 4, 16384, 0.0832, "BS"),
    VmSize("Standard_B4ms", 4, 16384, 8, 32768, 0.166, "BS"),
    VmSize("Standard_B8ms", 8, 32768, 16, 65536, 0.333, "BS"),
    # Constrained vCPU: E8s_v5 memory and price with 4 active cores. A rightsizer must not
    # mistake it for a cheaper 4-core size.
    VmSize("Standard_E8-4s_v5", 4, 65536, 16, 0, 0.504, "ESv5"),
)

# (tier, eastus $/month) per managed disk product; tier names follow the disk sizes.
PREMIUM_SSD = [
    ("P1", 1.54), ("P2", 3.08), ("P3", 6.16), ("P4", 5.28), ("P6", 10.21), ("P10", 19.71),
    ("P15", 38.01), ("P20", 73.22), ("P30", 135.17), ("P40", 259.05), ("P50", 495.57),
    ("P60", 946.08), ("P70", 1802.06), ("P80", 3604.11),
]  # fmt: skip
STANDARD_SSD = [
    ("E1", 0.30), ("E2", 0.60), ("E3", 1.20), ("E4", 2.40), ("E6", 4.80), ("E10", 9.60),
    ("E15", 19.20), ("E20", 38.40), ("E30", 76.80), ("E40", 153.60), ("E50", 307.20),
    ("E60", 614.40), ("E70", 1228.80), ("E80", 2457.60),
]  # fmt: skip
STANDARD_HDD = [
    ("S4", 1.54), ("S6", 3.01), ("S10", 5.89), ("S15", 11.33), ("S20", 21.76), ("S30", 40.96),
    ("S40", 77.82), ("S50", 143.36), ("S60", 276.48), ("S70", 552.96), ("S80", 1064.96),
]  # fmt: skip
IP_PRICES = [
    ("Standard", "Standard IPv4 Static Public IP", 0.005),
    ("Basic", "Basic IPv4 Static Public IP", 0.0036),
    ("Basic", "Basic IPv4 Dynamic Public IP", 0.004),
]
WINDOWS_PER_CORE = 0.046
SPOT_FACTOR = 0.15
LOW_PRIORITY_FACTOR = 0.2


def price_item(
    region: str,
    service: str,
    product: str,
    sku: str,
    meter: str,
    unit: str,
    price: float,
    arm_sku: str = "",
) -> dict[str, Any]:
    """One Retail Prices API item (USD, consumption, primary meter region)."""
    service_id, family = _SERVICE_IDS[service]
    product_id = "DZH318Z0" + hashlib.sha1(product.encode()).hexdigest()[:4].upper()
    sku_digest = hashlib.sha1(f"{product}|{sku}".encode()).hexdigest()[:4].upper()
    return {
        "currencyCode": "USD",
        "tierMinimumUnits": 0.0,
        "retailPrice": price,
        "unitPrice": price,
        "armRegionName": region,
        "location": REGIONS[region][0],
        "effectiveStartDate": EFFECTIVE,
        "meterId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{region}|{product}|{sku}|{meter}")),
        "meterName": meter,
        "productId": product_id,
        "skuId": f"{product_id}/{sku_digest}",
        "productName": product,
        "skuName": sku,
        "serviceName": service,
        "serviceId": service_id,
        "serviceFamily": family,
        "unitOfMeasure": unit,
        "type": "Consumption",
        "isPrimaryMeterRegion": True,
        "armSkuName": arm_sku,
    }


def _disk_items(region: str, factor: float) -> list[dict[str, Any]]:
    products = [
        ("Premium SSD Managed Disks", PREMIUM_SSD, "P10"),
        ("Standard SSD Managed Disks", STANDARD_SSD, "E10"),
        ("Standard HDD Managed Disks", STANDARD_HDD, "S10"),
    ]
    items = []
    for product, tiers, decoy_tier in products:
        for tier, monthly in tiers:
            items.append(
                price_item(
                    region, "Storage", product, f"{tier} LRS", f"{tier} LRS Disk", "1/Month",
                    round(monthly * factor, 4),
                )
            )  # fmt: skip
        # Decoy: a per-10K-transactions meter on a disk SKU, which a parser must ignore.
        items.append(
            price_item(
                region, "Storage", product, f"{decoy_tier} LRS", "Disk Operations", "10K",
                round(0.0005 * factor, 6),
            )
        )  # fmt: skip
    for tier, monthly in PREMIUM_SSD:
        items.append(
            price_item(
                region, "Storage", "Premium SSD Managed Disks", f"{tier} ZRS", f"{tier} ZRS Disk",
                "1/Month", round(monthly * 1.5 * factor, 4),
            )
        )  # fmt: skip
    return items


def _vm_items(region: str, factor: float) -> list[dict[str, Any]]:
    items = []
    for size in VM_SIZES:
        short = size.name.removeprefix("Standard_").replace("_", " ")
        product = f"Virtual Machines {size.product} Series"
        linux = size.linux_hourly * factor
        windows = linux + WINDOWS_PER_CORE * size.cores * factor
        rows = [
            (product, short, linux),
            (f"{product} Windows", short, windows),
            (product, f"{short} Spot", linux * SPOT_FACTOR),
            (product, f"{short} Low Priority", linux * LOW_PRIORITY_FACTOR),
        ]
        for product_name, sku, price in rows:
            items.append(
                price_item(
                    region, "Virtual Machines", product_name, sku, sku, "1 Hour",
                    round(price, 6), size.name,
                )
            )  # fmt: skip
    return items


def default_price_items() -> list[dict[str, Any]]:
    """Every seeded price item: managed disks, public IPs and VM sizes in both regions."""
    items: list[dict[str, Any]] = []
    for region, (_, factor) in REGIONS.items():
        items += _disk_items(region, factor)
        for sku, meter, hourly in IP_PRICES:
            items.append(
                price_item(
                    region, "Virtual Network", "IP Addresses", sku, meter, "1 Hour",
                    round(hourly * factor, 6),
                )
            )  # fmt: skip
        items += _vm_items(region, factor)
    return items
