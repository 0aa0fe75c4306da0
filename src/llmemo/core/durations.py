"""Parse human durations ("30m", "1d", "1h30m", 90, timedelta) into seconds."""

from __future__ import annotations

import math
import re
from datetime import timedelta

from llmemo.errors import ConfigError

Duration = float | int | str | timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def seconds(value: Duration) -> float:
    """Return a duration in seconds; raise ConfigError for anything that is not one (negative,
    infinite or NaN values included)."""
    if isinstance(value, bool):
        raise ConfigError(f"not a duration: {value!r}")
    if isinstance(value, timedelta):
        result = value.total_seconds()
    elif isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        try:
            result = float(text)
        except ValueError:
            parts = _PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ConfigError(
                    f"not a duration: {value!r} (use seconds or e.g. '30m', '24h', '7d', '1h30m')"
                ) from None
            result = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise ConfigError(f"not a duration: {value!r}")
    if not math.isfinite(result):
        raise ConfigError(f"a duration must be a finite number of seconds, got {value!r}")
    if result < 0:
        raise ConfigError(f"a duration cannot be negative: {value!r}")
    return result
