"""Prices: live AWS Pricing API through a local JSON-1.1 fake, cached in the store, and the
bundled dated table as a fallback that every quote names."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from costbot.pricing import AwsPriceBook, bundled_aws_prices
from costbot.store import Store

TABLE = bundled_aws_prices()


class FakePricing:
    """Answers GetProducts with one product whose price depends on the filters."""

    def __init__(self, prices: dict[tuple[str, str], float]) -> None:
        self.prices = prices
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"target": self.headers["X-Amz-Target"], **body})
                filters = {f["Field"]: f["Value"] for f in body["Filters"]}
                key = (
                    filters.get("instanceType") or filters.get("volumeApiName", ""),
                    filters["regionCode"],
                )
                products = []
                if key in fake.prices:
                    products.append(json.dumps(_product(fake.prices[key])))
                payload = json.dumps({"FormatVersion": "aws_v1", "PriceList": products}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _product(usd: float) -> dict[str, Any]:
    dimension = {"unit": "Hrs", "beginRange": "0", "pricePerUnit": {"USD": f"{usd:.10f}"}}
    return {
        "product": {"sku": "SKU1", "attributes": {}},
        "terms": {"OnDemand": {"SKU1.T": {"priceDimensions": {"SKU1.T.D": dimension}}}},
    }


@pytest.fixture
def fake_pricing(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePricing]:
    fake = FakePricing({("m5.xlarge", "us-east-1"): 0.2, ("gp2", "us-east-1"): 0.3})
    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", fake.url)
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def _client() -> Any:
    return boto3.client("pricing", region_name="us-east-1")


def test_bundled_volume_price_is_size_times_rate_plus_provisioned_extras() -> None:
    book = AwsPriceBook(live=False)
    ebs = TABLE["ebs"]["us-east-1"]
    gp2 = book.volume("us-east-1", "gp2", 500, None, None)
    assert gp2.monthly_usd == pytest.approx(500 * ebs["gp2"])
    assert (gp2.source, gp2.date) == ("bundled", TABLE["date"])
    gp3 = book.volume("us-east-1", "gp3", 100, 6000, 250)
    expected = 100 * ebs["gp3"] + 3000 * ebs["iops"]["gp3"] + 125 * ebs["gp3_throughput_mibps"]
    assert gp3.monthly_usd == pytest.approx(expected)
    io1 = book.volume("us-east-1", "io1", 200, 5000, None)
    assert io1.monthly_usd == pytest.approx(200 * ebs["io1"] + 5000 * ebs["iops"]["io1"])


def test_public_ipv4_costs_the_flat_rate_attached_or_not() -> None:
    quote = AwsPriceBook(live=False).public_ip("eu-west-1")
    assert quote.monthly_usd == pytest.approx(0.005 * 730)


def test_instance_price_scales_with_vcpus_within_a_family() -> None:
    book = AwsPriceBook(live=False)
    large = TABLE["ec2_large_hour"]["eu-west-1"]["m5"]
    assert book.instance("eu-west-1", "m5.4xlarge", 16).monthly_usd == pytest.approx(
        large * 8 * 730
    )


def test_region_missing_from_the_table_says_it_borrowed_another_rate() -> None:
    quote = AwsPriceBook(live=False).volume("ap-south-1", "gp2", 10, None, None)
    assert quote.monthly_usd == pytest.approx(10 * TABLE["ebs"]["us-east-1"]["gp2"])
    assert "us-east-1 rate" in quote.source and "ap-south-1" in quote.source


def test_live_price_is_used_and_cached_in_the_store(
    fake_pricing: FakePricing, store: Store
) -> None:
    book = AwsPriceBook(live=True, store=store, client_factory=_client)
    quote = book.instance("us-east-1", "m5.xlarge", 4)
    assert quote.monthly_usd == pytest.approx(0.2 * 730)
    assert quote.source == "aws-pricing-api"
    book.instance("us-east-1", "m5.xlarge", 4)
    assert len(fake_pricing.requests) == 1
    filters = {f["Field"]: f["Value"] for f in fake_pricing.requests[0]["Filters"]}
    assert filters["operatingSystem"] == "Linux" and filters["tenancy"] == "Shared"
    fresh_book = AwsPriceBook(live=True, store=store, client_factory=_client)
    assert fresh_book.instance("us-east-1", "m5.xlarge", 4).source == "aws-pricing-api"
    assert len(fake_pricing.requests) == 1


def test_live_api_without_that_product_falls_back_to_the_table(fake_pricing: FakePricing) -> None:
    book = AwsPriceBook(live=True, client_factory=_client)
    quote = book.volume("us-east-1", "st1", 100, None, None)
    assert quote.source == "bundled"
    assert any("no price for ebs:us-east-1:st1:gb" in note for note in book.notes)
    assert book.volume("us-east-1", "gp2", 10, None, None).monthly_usd == pytest.approx(3.0)


def test_unreachable_api_falls_back_once_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", f"http://127.0.0.1:{port}")
    calls = []

    def factory() -> Any:
        calls.append(1)
        from botocore.config import Config

        return boto3.client(
            "pricing",
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, connect_timeout=1),
        )

    book = AwsPriceBook(live=True, client_factory=factory)
    first = book.instance("us-east-1", "m5.xlarge", 4)
    second = book.volume("us-east-1", "gp2", 10, None, None)
    assert first.source == second.source == "bundled"
    assert len(calls) == 1
    assert len(book.notes) == 1 and "bundled price table dated" in book.notes[0]
