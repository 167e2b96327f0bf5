"""Credentials out of URLs: the one helper every log line, page and API answer goes through.

Gallery locations (``postgresql://ada:secret@host/db``) and camera sources
(``rtsp://admin:secret@cam/stream``, ``http://cam/video.mjpg?user=a&pwd=secret``) carry passwords;
``redact`` keeps what tells the operator which one is meant (scheme, user, host, port, path) and
replaces the secrets with ``***``; ``redact_text`` does it for every URL inside a message (a
decoder's error often repeats the URL it was given).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters that carry a secret in cameras' URLs (Hikvision, Axis, Reolink, tokens, ...).
SECRET_PARAMS = frozenset(
    {"password", "passwd", "pass", "pwd", "token", "access_token", "auth", "key", "apikey",
     "api_key", "secret", "signature", "sig", "session", "sessionid"}
)  # fmt: skip
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact(url: str) -> str:
    """``url`` without its password or secret query values (``rtsp://ada:***@host/s``)."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return url.split("://", 1)[0] + "://" + MASK
    netloc = parts.netloc
    if parts.password is not None:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:{MASK}@{host}{port}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_PARAMS for k, _ in pairs):
            query = urlencode(
                [(k, MASK if k.lower() in SECRET_PARAMS else v) for k, v in pairs], safe="*"
            )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, *secrets: str) -> str:
    """``text`` with every URL in it redacted, and each of ``secrets`` (a source as given,
    whose redacted form may differ in spelling) replaced by its redacted form."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, redact(secret))
    return _URL.sub(lambda m: redact(m.group(0)), text)
