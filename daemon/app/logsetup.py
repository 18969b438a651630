"""The daemon's own log lines on stdout, one per event, in a form journald understands.

Under systemd (JOURNAL_STREAM set) each line starts with the sd-daemon priority prefix
(`<3>` for errors...) so `journalctl -p err` works; on a terminal lines carry a time and a
coloured level; otherwise a plain `LEVEL logger: message`.
"""

from __future__ import annotations

import logging
import os
import re
import sys

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}
_COLOUR = {
    logging.DEBUG: 2,
    logging.INFO: 0,
    logging.WARNING: 33,
    logging.ERROR: 31,
    logging.CRITICAL: 31,
}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


class _TerminalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        colour = _COLOUR.get(record.levelno, 0)
        return f"\x1b[{colour}m{text}\x1b[0m" if colour else text


# A webhook URL's last segment is its key, a secret (daemon/api/middleware.py WEBHOOK_PATH),
# with or without a tenant (/api/v1/main/executions/webhook/...).
_WEBHOOK_KEY = re.compile(
    r"(/api/v1/(?:[^/\s'\"?#]+/)?executions/webhook/[^/\s'\"?#]*/[^/\s'\"?#]*/)[^\s'\"?#&]+"
)


class _WebhookKeys(logging.Filter):
    """Masks webhook keys in every line, aiohttp's own included: its parser puts the
    request line (key and all) in the error it logs for an over-long or malformed request,
    which no middleware of ours ever sees."""

    _exceptions = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info:
            text = f"{text}\n{self._exceptions.formatException(record.exc_info)}"
        if "/webhook/" not in text:
            return True
        record.msg, record.args = _WEBHOOK_KEY.sub(r"\1***", text), None
        record.exc_info = record.exc_text = None
        return True


def _under_journald() -> bool:
    stream = os.environ.get("JOURNAL_STREAM", "")
    if not stream:
        return False
    try:
        st = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    if _under_journald():
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    elif sys.stdout.isatty():
        handler.setFormatter(
            _TerminalFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_WebhookKeys())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # One line per HTTP request is noise in the journal at the default level: on at DEBUG.
    access = logging.getLogger("daemon.api.access")
    access.setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING)
