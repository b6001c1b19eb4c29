"""A process-wide token bucket per AWS service, applied through botocore's before-call event,
so hundreds of concurrent account x region scans stay under each API's request rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any


class RateLimiter:
    """Blocks a call until its service's bucket has a token (calls per second, with a burst)."""

    def __init__(self, per_second: Mapping[str, float]) -> None:
        self._rates = dict(per_second)
        self._tokens = {service: max(1.0, float(rate)) for service, rate in self._rates.items()}
        self._stamp = {service: time.monotonic() for service in self._rates}
        self._lock = threading.Lock()

    def wait(self, service: str) -> float:
        """Take one token for `service`, sleeping as needed; returns the seconds waited."""
        rate = self._rates.get(service)
        if rate is None:
            return 0.0
        waited = 0.0
        while True:
            with self._lock:
                now = time.monotonic()
                capacity = max(1.0, rate)  # a rate below 1/s still lets one call through
                tokens = min(capacity, self._tokens[service] + (now - self._stamp[service]) * rate)
                self._stamp[service] = now
                if tokens >= 1:
                    self._tokens[service] = tokens - 1
                    return waited
                self._tokens[service] = tokens
                pause = (1 - tokens) / rate
            time.sleep(pause)
            waited += pause

    def before_call(self, event_name: str = "", **_: Any) -> None:
        """botocore handler for 'before-call': the service is the event name's second part."""
        parts = event_name.split(".")
        if len(parts) > 1:
            self.wait(parts[1])
