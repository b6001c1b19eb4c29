"""Read-only inventory adapters, one module per cloud, and the factory that builds the ones
a config asks for (with their price books)."""

from __future__ import annotations

from costbot.config import Config
from costbot.errors import ConfigError
from costbot.model import Provider
from costbot.pricing import AwsPriceBook, PriceBook
from costbot.ratelimit import RateLimiter
from costbot.scan import InventoryProvider
from costbot.store import Store


def build_providers(config: Config, only: Provider | None = None) -> list[InventoryProvider]:
    """The inventory adapters for every configured provider (or just `only`)."""
    adapters: list[InventoryProvider] = []
    aws = config.providers.aws
    if aws is not None and only in (None, Provider.AWS):
        from costbot.providers.aws import AwsProvider

        adapters.append(
            AwsProvider(
                aws,
                config.rules.oversized_instance,
                max_pool_connections=max(10, config.scan.concurrency),
                rate_limiter=RateLimiter(config.scan.rate_limits),
            )
        )
    gcp = config.providers.gcp
    if gcp is not None and only in (None, Provider.GCP):
        from costbot.providers.gcp import GcpProvider

        adapters.append(GcpProvider(gcp, config.rules.oversized_instance))
    azure = config.providers.azure
    if azure is not None and only in (None, Provider.AZURE):
        from costbot.providers.azure import AzureProvider

        adapters.append(AzureProvider(azure, config.rules.oversized_instance))
    if only is not None and not adapters:
        raise ConfigError(f"provider '{only}' is not configured", key=f"providers.{only}")
    if not adapters:
        raise ConfigError("no provider is configured; add one under", key="providers")
    return adapters


def build_price_books(config: Config, store: Store) -> dict[Provider, PriceBook]:
    """A price book per provider, live or bundled as config.pricing says."""
    import boto3
    from botocore.config import Config as BotoConfig

    def pricing_client() -> object:
        return boto3.client(
            "pricing",
            region_name="us-east-1",
            config=BotoConfig(
                connect_timeout=5, read_timeout=15, retries={"mode": "standard", "max_attempts": 3}
            ),
        )

    live = config.pricing.source == "live"
    books: dict[Provider, PriceBook] = {
        Provider.AWS: AwsPriceBook(
            live=live,
            store=store,
            client_factory=pricing_client,  # type: ignore[arg-type]
            cache_days=config.pricing.cache_days,
        )
    }
    gcp = config.providers.gcp
    if gcp is not None:
        from costbot.pricing.gcp import GcpPriceBook
        from costbot.providers.gcp_clients import GcpClients

        books[Provider.GCP] = GcpPriceBook(
            live=live,
            store=store,
            client_factory=GcpClients(gcp).catalog,
            cache_days=config.pricing.cache_days,
        )
    azure = config.providers.azure
    if azure is not None:
        from costbot.pricing.azure import AzurePriceBook

        books[Provider.AZURE] = AzurePriceBook(
            live=live,
            store=store,
            endpoint=azure.retail_prices_endpoint,
            ca_bundle=azure.ca_bundle,
            cache_days=config.pricing.cache_days,
        )
    return books
