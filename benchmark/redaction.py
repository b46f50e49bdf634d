"""Credentials never leave the process: a URL's password is shown and stored as ``***``.

Storage and tracking URLs (``postgresql://user:password@host/db``, ``http://user:token@host``)
are user input that would otherwise reach error lines, log lines, MLflow tags and params, and
exported files. Every place of the harness that shows or stores one passes it through
:func:`redact` first; :class:`RedactingFilter` also covers what other libraries log (MLflow,
Optuna, SQLAlchemy). The user name and everything else stay, so the URL still says where.

Only the standard library is imported here: the command line installs the log filter at start-up.
"""

from __future__ import annotations

import logging
import re

PLACEHOLDER = "***"

#: ``scheme://user:password@``: the password runs to the last ``@`` before the host (an ``@``
#: in a password should be percent-encoded, but SQLAlchemy accepts it raw), never past a ``/``.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*):(?P<password>[^/?#\s]*)@")
#: ``?password=...`` and friends, which some drivers accept in the query string.
_QUERY_SECRET = re.compile(r"(?P<head>[?&](?:password|passwd|pwd|token|access_token|secret)=)[^&#\s]*",
                           re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    text = _USERINFO.sub(lambda match: f"{match['head']}:{PLACEHOLDER}@", text)
    return _QUERY_SECRET.sub(lambda match: f"{match['head']}{PLACEHOLDER}", text)


def has_credentials(url: str) -> bool:
    """True where ``url`` carries a password that :func:`redact` would hide."""
    return redact(url) != url


class RedactingFilter(logging.Filter):
    """A handler filter that redacts URL passwords in every record it passes.

    On a handler rather than a logger: a handler's filters see the records of every logger
    that reaches it, a logger's only its own.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactingFilter` to the handlers of ``logger`` (default: the root logger).

    MLflow gives its loggers a handler of their own that does not propagate to the root, so
    :func:`benchmark.tracking.connect` installs it there too. Installing twice is harmless.
    """
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(item, RedactingFilter) for item in handler.filters):
            handler.addFilter(RedactingFilter())
