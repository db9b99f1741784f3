"""Credentials kept out of what cvm writes and prints: a password in a URL (``user:secret@``
or ``?password=``) is masked in MLflow parameters, messages and run summaries, and refused in
``export.database.url``, where libpq reads it from ``PGPASSWORD`` or ``~/.pgpass`` instead."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]*):(?P<secret>[^/\s]*)@", re.I)
_QUERY = re.compile(
    r"(?P<head>[?&](?:password|passwd|pwd|secret|token|api_?key|access_?key|sslpassword)=)"
    r"(?P<secret>[^&\s'\"]*)",
    re.I,
)
MASK = "***"


def redact(text: str) -> str:
    """``text`` with every password of a URL in it masked."""
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@" if m["secret"] else m[0], text)
    return _QUERY.sub(lambda m: m["head"] + MASK if m["secret"] else m[0], text)


def has_password(url: str) -> bool:
    """Whether ``url`` carries a password."""
    return redact(url) != url
