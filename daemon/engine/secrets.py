"""Secrets: read from the environment as Kestra does, and masked on their way to the store.

Kestra's convention: SECRET_<NAME> holds the base64 of the value; names are read upper-cased,
so `secret('my_key')` finds SECRET_MY_KEY. Every value read (or
declared secret by a plug-in) is replaced by ****** in what is stored from then on: logs,
task-run outputs, execution outputs and errors. Tasks of the running execution keep the
clear values in memory.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from typing import Any

from daemon.sdk.errors import PodiumError

MASK = "******"


class SecretError(PodiumError):
    """A secret that is not set, or not readable as the flow asks."""


class SecretStore:
    """The secrets of one process: where values come from, and which ones to mask."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._known: set[str] = set()

    def secret(
        self, key: str | None = None, namespace: str | None = None, subkey: str | None = None
    ) -> str:
        """Kestra's `secret(key, namespace, subkey)`: the value of secret `key` (looked up
        upper-cased, as Kestra does), or one field of it when it holds JSON. The environment
        holds secrets for every namespace, so `namespace` selects nothing here. A secret that is
        not set, not base64, or has no `subkey` is a SecretError. The value is masked from
        now on."""
        if key is None:
            raise SecretError("The 'secret' function expects an argument 'key'.")
        name = str(key).upper()
        encoded = self._environ.get(f"SECRET_{key}")
        if encoded is None:
            encoded = next(
                (v for k, v in self._environ.items() if k.upper() == f"SECRET_{name}"), None
            )
        if encoded is None:
            raise SecretError(
                f"secret '{key}' is not set (environment variable SECRET_{name}, base64-encoded)"
            )
        try:
            text = encoded.strip().replace("\r", "").replace("\n", "")
            value = base64.b64decode(text, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise SecretError(f"secret '{key}': SECRET_{name} is not base64 text") from None
        self.add(value)
        return value if not subkey else self._field(value, str(key), str(subkey))

    def _field(self, value: str, key: str, subkey: str) -> str:
        try:
            fields = json.loads(value)
        except ValueError:
            fields = None
        if not isinstance(fields, dict):
            raise SecretError(
                f"Failed to read secret sub-key '{subkey}' from secret '{key}'. "
                "Ensure the secret contains valid JSON value."
            )
        if subkey not in fields:
            raise SecretError(f"Cannot find secret sub-key '{subkey}' in secret '{key}'.")
        item = fields[subkey]
        text = item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))
        self.add(text)
        return text

    def add(self, value: str) -> None:
        if value:
            self._known.add(value)

    def mask(self, text: str) -> str:
        for secret in self._known:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def masked(self, value: Any) -> Any:
        """`value` with every known secret replaced by ****** in all its strings."""
        if not self._known:
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {k: self.masked(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.masked(v) for v in value]
        return value
