"""Logging setup: one line per record on stderr, with structured `extra` fields appended as
key=value (text) or as JSON keys, and secret-looking values masked."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any, TextIO

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_SECRET = re.compile(r"(xox[abposr]-[A-Za-z0-9-]+|(?i:secret|token|password)=\S+)")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


def _mask(text: str) -> str:
    return _SECRET.sub("***", text)


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message key=value ...`."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as a text line."""
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{record.levelname} {record.name}: {record.getMessage()} {extra}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return _mask(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as a JSON line."""
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return _mask(json.dumps(data, default=str))


def setup_logging(verbosity: int, fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure the root logger: WARNING by default, INFO with -v, DEBUG with -vv."""
    out = stream or sys.stderr
    level = logging.WARNING - 10 * min(verbosity, 2)
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
