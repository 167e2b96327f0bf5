"""Webhooks: each event's opening and end POSTed as JSON to a URL, retried with backoff.

The body is the notifier's message (``facemetric.events.notify``). A 2xx answer is delivered;
a 408, 429, 5xx, a refused connection or a timeout is retried (0.5 s doubling to 30 s, in
order, while newer messages wait in the bounded queue); any other 4xx is dropped and logged.
Credentials in the URL (``https://user:password@host/...``) are sent as HTTP Basic auth.
With a ``secret`` each request carries ``X-Facemetric-Signature: sha256=HMAC(secret, body)``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from facemetric import __version__
from facemetric.errors import ConfigError
from facemetric.events.notify import (
    DeliveryError,
    Queued,
    QueueNotifier,
    display_target,
    json_default,
)

RETRY_STATUS = {408, 425, 429}


class WebhookNotifier(QueueNotifier):
    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: str | None = None,
        timeout: float = 5.0,
        start: bool = True,
        **queue: Any,
    ) -> None:
        if not url.lower().startswith(("http://", "https://")):
            raise ConfigError(
                f"--webhook {display_target(url)}: must be an http:// or https:// URL"
            )
        super().__init__(url, **queue)
        self.url, self.auth = _split_credentials(url)
        self.secret = secret
        self.timeout = timeout
        if start:
            self.start()

    def deliver(self, item: Queued) -> None:
        body = json.dumps(item.message, ensure_ascii=False, default=json_default).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"facemetric/{__version__}",
            "X-Facemetric-Event": item.kind,
        }
        if self.auth:
            headers["Authorization"] = self.auth
        if self.secret:
            digest = hmac.new(self.secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
            headers["X-Facemetric-Signature"] = f"sha256={digest}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                answer.read(1024)
        except urllib.error.HTTPError as exc:
            retry = exc.code in RETRY_STATUS or exc.code >= 500
            raise DeliveryError(f"HTTP {exc.code} {exc.reason}", retry=retry) from None
        except urllib.error.URLError as exc:
            raise DeliveryError(f"cannot reach it ({exc.reason})") from None
        except (TimeoutError, ConnectionError, OSError) as exc:
            raise DeliveryError(f"cannot reach it ({exc})") from None


def _split_credentials(url: str) -> tuple[str, str | None]:
    """``https://user:password@host/path`` -> the URL without them and a Basic header."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, None
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    netloc = parts.netloc.rsplit("@", 1)[1]
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), f"Basic {token}"
