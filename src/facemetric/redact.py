"""Credentials out of URLs: the one helper every log line, page and API answer goes through.

Gallery locations (``postgresql://ada:secret@host/db``) and camera sources
(``rtsp://admin:secret@cam/stream``, ``http://cam/video.mjpg?user=a&pwd=secret``) carry passwords;
``redact`` keeps what tells the operator which one is meant (scheme, user name, host, port, path,
query names) and replaces every value that may be a secret with ``***``; ``redact_text`` does
it for every URL inside a message (a decoder's error often repeats the URL it was given).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
# Vendor forms that put the login in the path (``/user=admin_password=SECRET_channel=1_...``,
# ``/loginpas=SECRET/``): the value runs to the next ``_name=``, ``&``, ``;`` or ``/``.
_PATH_SECRET = re.compile(
    r"(?i)((?:user|usr|login|pass|pwd|token|key|secret|auth|sig|session)[a-z_]*=)"
    r"(.*?)(?=_[a-z]+=|[&;/]|$)"
)


def redact(url: str) -> str:
    """``url`` without its secrets: the password (``rtsp://ada:***@host/s``), a user part with
    no password (often a token: ``http://***@host/``), every query value (vendors name the
    password ``pwd``, ``loginpas``, ``p``, ...: ``?loginuse=***&loginpas=***``) and logins
    in the path (``/user=***_password=***_channel=1``)."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return url.split("://", 1)[0] + "://" + MASK
    netloc = parts.netloc
    if "@" in netloc:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        user = f"{parts.username}:" if parts.password is not None and parts.username else ""
        netloc = f"{user}{MASK}@{host}{port}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK) for k, _ in pairs], safe="*") if pairs else MASK
    path = _PATH_SECRET.sub(lambda m: m.group(1) + MASK, parts.path)
    if netloc == parts.netloc and query == parts.query and path == parts.path:
        return url
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


def redact_text(text: str, *secrets: str) -> str:
    """``text`` with every URL in it redacted, and each of ``secrets`` (a source as given,
    whose redacted form may differ in spelling) replaced by its redacted form."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, redact(secret))
    return _URL.sub(lambda m: redact(m.group(0)), text)
