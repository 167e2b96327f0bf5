"""Times as people type them for ``--since``/``--until`` and ``?since=``/``?until=``.

An ISO 8601 time (``2026-12-03T09:14``, ``2026-12-03 09:14:05Z``, ``...+01:00``; no zone means
UTC), a date (``2026-12-03``: its midnight UTC), Unix seconds (``1764753240``), or a time ago
(``90s``, ``15m``, ``2h``, ``7d``, ``1w``).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from facemetric.errors import ConfigError

_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.I)
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def parse_time(
    text: str | float | None, field: str = "time", now: float | None = None
) -> float | None:
    """Unix seconds for ``text`` (None and "" stay None); ``ConfigError`` naming ``field``
    and what is accepted when it cannot be read."""
    if text is None:
        return None
    if isinstance(text, int | float):
        return float(text)
    value = text.strip()
    if not value:
        return None
    ago = _AGO.match(value)
    if ago:
        reference = time.time() if now is None else now
        return reference - float(ago.group(1)) * _UNITS[ago.group(2).lower()]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{field}: {text!r} is not a time; use ISO 8601 (2026-12-03T09:14:00Z), Unix "
            "seconds, or a time ago (30m, 2h, 7d)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
