"""The Cloud Billing Catalog side of the GCP emulator: a seeded Compute Engine SKU set (Google's
public list prices, November 2026) in the API's own JSON shape, and the paged `services` and
`services/{id}/skus` answers.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

COMPUTE_SERVICE_ID = "6F81-5844-456A"
COMPUTE_SERVICE: dict[str, Any] = {
    "name": f"services/{COMPUTE_SERVICE_ID}",
    "serviceId": COMPUTE_SERVICE_ID,
    "displayName": "Compute Engine",
    "businessEntityName": "businessEntities/GCP",
}
EFFECTIVE_TIME = "2026-11-01T08:00:00.000000Z"
GIB = 1024**3
# usageUnit -> (description, baseUnit, baseUnitDescription, baseUnitConversionFactor)
UNITS: dict[str, tuple[str, str, str, float]] = {
    "GiBy.mo": ("gibibyte month", "By.s", "byte second", GIB * 2_678_400.0),
    "GiBy.h": ("gibibyte hour", "By.s", "byte second", GIB * 3600.0),
    "GiBy": ("gibibyte", "By", "byte", float(GIB)),
    "h": ("hour", "s", "second", 3600.0),
}
REGION_NAMES = {"us-central1": "Americas", "us-east1": "Americas", "europe-west1": "EMEA"}
# (description prefix, resourceFamily, resourceGroup, usageUnit, us price, europe-west1 price)
REGIONAL_SKUS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("Storage PD Capacity", "Storage", "PDStandard", "GiBy.mo", "0.04", "0.044"),
    ("Balanced PD Capacity", "Storage", "SSD", "GiBy.mo", "0.1", "0.11"),
    ("SSD backed PD Capacity", "Storage", "SSD", "GiBy.mo", "0.17", "0.187"),
    ("Extreme PD Capacity", "Storage", "SSD", "GiBy.mo", "0.125", "0.138"),
    ("Static Ip Charge", "Network", "IpAddress", "h", "0.01", "0.01"),
    ("N2 Instance Core running", "Compute", "CPU", "h", "0.031611", "0.034773"),
    ("N2 Instance Ram running", "Compute", "RAM", "GiBy.h", "0.004237", "0.004661"),
    ("E2 Instance Core running", "Compute", "CPU", "h", "0.021811", "0.023983"),
    ("E2 Instance Ram running", "Compute", "RAM", "GiBy.h", "0.002923", "0.003215"),
    ("N1 Predefined Instance Core running", "Compute", "CPU", "h", "0.031611", "0.034773"),
    ("N1 Predefined Instance Ram running", "Compute", "RAM", "GiBy.h", "0.004237", "0.004661"),
    ("C3 Instance Core running", "Compute", "CPU", "h", "0.03465", "0.038115"),
    ("C3 Instance Ram running", "Compute", "RAM", "GiBy.h", "0.003938", "0.004332"),
)


def money(price: str) -> dict[str, Any]:
    """A google.type.Money JSON dict (USD) for a decimal price string."""
    value = Decimal(price)
    units = int(value)
    return {"currencyCode": "USD", "units": str(units), "nanos": int((value - units) * 10**9)}


def make_sku(
    description: str,
    *,
    region: str,
    family: str,
    group: str,
    usage_unit: str,
    tiers: tuple[tuple[float, str], ...],
    usage_type: str = "OnDemand",
) -> dict[str, Any]:
    """One Compute Engine SKU JSON dict; `tiers` are (startUsageAmount, unit price) pairs."""
    digest = hashlib.sha1(f"{description}|{region}|{usage_type}".encode()).hexdigest().upper()
    sku_id = f"{digest[:4]}-{digest[4:8]}-{digest[8:12]}"
    unit_description, base_unit, base_description, factor = UNITS[usage_unit]
    return {
        "name": f"services/{COMPUTE_SERVICE_ID}/skus/{sku_id}",
        "skuId": sku_id,
        "description": description,
        "category": {
            "serviceDisplayName": "Compute Engine",
            "resourceFamily": family,
            "resourceGroup": group,
            "usageType": usage_type,
        },
        "serviceRegions": [region],
        "pricingInfo": [
            {
                "effectiveTime": EFFECTIVE_TIME,
                "summary": "",
                "pricingExpression": {
                    "usageUnit": usage_unit,
                    "displayQuantity": 1,
                    "tieredRates": [
                        {"startUsageAmount": start, "unitPrice": money(price)}
                        for start, price in tiers
                    ],
                    "usageUnitDescription": unit_description,
                    "baseUnit": base_unit,
                    "baseUnitDescription": base_description,
                    "baseUnitConversionFactor": factor,
                },
                "aggregationInfo": {
                    "aggregationLevel": "ACCOUNT",
                    "aggregationInterval": "MONTHLY",
                    "aggregationCount": 1,
                },
                "currencyConversionRate": 1,
            }
        ],
        "serviceProviderName": "Google",
        "geoTaxonomy": {"type": "REGIONAL", "regions": [region]},
    }


def default_skus() -> list[dict[str, Any]]:
    """The seeded Compute Engine SKUs (3 regions) plus decoys a price book must skip."""
    skus = [
        make_sku(
            f"{prefix} in {REGION_NAMES[region]}",
            region=region,
            family=family,
            group=group,
            usage_unit=unit,
            tiers=((0, eu_price if region == "europe-west1" else us_price),),
        )
        for region in REGION_NAMES
        for prefix, family, group, unit, us_price, eu_price in REGIONAL_SKUS
    ]
    skus += [
        make_sku(
            "Preemptible N2 Instance Core running in Americas",
            region="us-central1",
            family="Compute",
            group="CPU",
            usage_unit="h",
            tiers=((0, "0.00765"),),
            usage_type="Preemptible",
        ),
        make_sku(
            "Commitment v1: N2 Cpu in Americas for 1 Year",
            region="us-central1",
            family="Compute",
            group="CPU",
            usage_unit="h",
            tiers=((0, "0.019915"),),
            usage_type="Commit1Yr",
        ),
        make_sku(
            "Network Internet Egress from Americas to Americas",
            region="us-central1",
            family="Network",
            group="PremiumInternetEgress",
            usage_unit="GiBy",
            tiers=((0, "0"), (1, "0.12"), (1024, "0.11"), (10240, "0.08")),
        ),
    ]
    return skus


STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def billing_error(status: int, message: str) -> tuple[int, Any]:
    """A Cloud Billing error answer (`{"error": {"code", "message", "status"}}`)."""
    name = STATUS_NAMES.get(status, "UNKNOWN")
    return status, {"error": {"code": status, "message": message, "status": name}}


def billing_answer(
    method: str, path: str, query: dict[str, str], skus: list[dict[str, Any]], page_size: int
) -> tuple[int, Any]:
    """Answer GET /v1/services and GET /v1/services/{id}/skus (paged by pageToken/pageSize)."""
    if method != "GET":
        return billing_error(404, f"emulator: no route for {method} {path}")
    if path == "/v1/services":
        return 200, {"services": [COMPUTE_SERVICE], "nextPageToken": ""}
    parts = path.split("/")
    if len(parts) != 5 or parts[2] != "services" or parts[4] != "skus":
        return billing_error(404, f"emulator: no route for GET {path}")
    if parts[3] != COMPUTE_SERVICE_ID:
        return billing_error(404, f"Service services/{parts[3]} not found.")
    if query.get("currencyCode", "USD") != "USD":
        return billing_error(400, "The emulator prices in USD only.")
    try:
        start = int(query.get("pageToken") or 0)
        wanted = int(query.get("pageSize") or 0)
    except ValueError:
        return billing_error(400, "Invalid page token or page size.")
    end = start + (min(page_size, wanted) if wanted > 0 else page_size)
    token = str(end) if end < len(skus) else ""
    return 200, {"skus": skus[start:end], "nextPageToken": token}
