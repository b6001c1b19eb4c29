"""Price books, one per cloud: live price APIs cached in the store, bundled dated fallbacks."""

from costbot.pricing.aws import AwsPriceBook, bundled_aws_prices
from costbot.pricing.base import PriceBook, Quote

__all__ = ["AwsPriceBook", "PriceBook", "Quote", "bundled_aws_prices"]
