"""The environment a script process starts with: what the task declares, and no secrets.

The daemon's own environment holds its credentials (PODIUM_BASIC_AUTH_PASSWORD), every
flow's secrets (SECRET_*, base64, readable by anyone who decodes them) and systemd's
sockets (NOTIFY_SOCKET). A script inheriting it could print them into its logs, where no
mask catches them. So a script gets only:

- what Kestra documents for script tasks: the task's `env`, WORKING_DIR (and the
  runner's own additions: the stand-in `kestra` module on PYTHONPATH, a venv's PATH);
- what a process needs to behave: PATH, HOME, USER, LOGNAME, SHELL, LANG, LANGUAGE, LC_*,
  TZ, TMPDIR, TERM, XDG_RUNTIME_DIR;
- what reaching the network needs on this host: proxies and CA bundles, and pip's and
  uv's own settings (an index mirror for `beforeCommands: pip install ...`).

Anything else a script needs is passed the Kestra way: `env:` on the task, or on every
script task at once through `pluginDefaults`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

PASSED = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TERM",
        "XDG_RUNTIME_DIR",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    }
)
PASSED_PREFIXES = ("LC_", "PIP_", "UV_")


def script_environment(
    declared: Mapping[str, str], host: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The host's harmless variables (`os.environ` by default), then `declared` on top."""
    source = os.environ if host is None else host
    kept = {
        name: value
        for name, value in source.items()
        if name.upper() in PASSED or name.upper().startswith(PASSED_PREFIXES)
    }
    kept.setdefault("PATH", os.defpath)
    return {**kept, **declared}
