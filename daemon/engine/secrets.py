"""Secrets: read from the environment as Kestra does, and masked on their way to the store.

Kestra's convention: SECRET_<NAME> holds the base64 of the value. Every value read (or
declared secret by a plug-in) is replaced by ****** in what is stored from then on: logs,
task-run outputs, execution outputs and errors. Tasks of the running execution keep the
clear values in memory.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from typing import Any

MASK = "******"


class SecretStore:
    """The secrets of one process: where values come from, and which ones to mask."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._known: set[str] = set()

    def secret(self, name: str) -> str:
        """The value of secret `name`; KeyError when it is not set, ValueError when it is not
        base64. The value is masked from now on."""
        key = str(name)
        encoded = self._environ.get(f"SECRET_{key}")
        if encoded is None:
            raise KeyError(
                f"secret '{key}' is not set (environment variable SECRET_{key}, base64-encoded)"
            )
        try:
            value = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError(f"secret '{key}': SECRET_{key} is not base64 text") from None
        self.add(value)
        return value

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
