"""Every error costbot raises on purpose, as one tree, so callers catch exactly what they mean.

CostbotError
├── ConfigError          a config file, key or value is wrong (exit code 2)
├── ProviderError        a cloud API call failed for one account/region (that unit fails alone)
├── PricingError         no price could be found, live or bundled
└── StoreError           the findings database refused an operation
    ├── UnknownFindingError   no finding has that id
    └── TransitionError       the finding's status does not allow that move
"""

from __future__ import annotations


class CostbotError(Exception):
    """Base of every error costbot raises deliberately."""


class ConfigError(CostbotError):
    """A configuration mistake, naming the file, the key path and what was expected."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        self.path = path
        self.key = key
        where = ": ".join(part for part in (path, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class ProviderError(CostbotError):
    """A cloud API call failed; carries which provider/account/region and which operation."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        account: str = "",
        region: str = "",
        operation: str = "",
    ) -> None:
        self.provider = provider
        self.account = account
        self.region = region
        self.operation = operation
        super().__init__(message)


class PricingError(CostbotError):
    """No price was found for a resource, neither from the live API nor the bundled table."""


class StoreError(CostbotError):
    """The findings store refused an operation."""


class UnknownFindingError(StoreError):
    """No finding with the given id exists in the store."""


class TransitionError(StoreError):
    """A status change that the finding's lifecycle does not allow."""


class CleanupError(CostbotError):
    """A cleanup action could not be checked or carried out."""


class SlackError(CostbotError):
    """Slack refused a call (bad channel or token, still rate limited) or was unreachable."""
