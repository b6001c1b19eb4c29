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
    if only is not None and not adapters:
        if getattr(config.providers, str(only)) is not None:
            raise ConfigError(
                f"scanning {only} is not available in this version (providers.{only} feeds "
                "the cost digest only)",
                key=f"providers.{only}",
            )
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

    return {
        Provider.AWS: AwsPriceBook(
            live=config.pricing.source == "live",
            store=store,
            client_factory=pricing_client,  # type: ignore[arg-type]
            cache_days=config.pricing.cache_days,
        )
    }
