"""Kestra's `encrypt(key, plaintext)` and `decrypt(key, encrypted)` (its EncryptionService):
AES in GCM mode with a 128-bit tag, the key given base64-encoded (16, 24 or 32 bytes, e.g.
from `secret('ENCRYPTION_KEY')`), the output base64 of a random 12-byte IV followed by the
ciphertext. A value encrypted by Kestra decrypts here, and the other way round.

`cryptography` is imported on first use: a flow that never encrypts never pays for it.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable
from typing import Any

from jinja2 import Undefined

from daemon.sdk.errors import TemplateError

_IV_LENGTH = 12


def _text(function: str, names: str, name: str, value: Any) -> str:
    if value is None or isinstance(value, Undefined):
        raise TemplateError(f"The '{function}' function expects two arguments {names}.")
    if not isinstance(value, str):
        raise TemplateError(f"The '{function}' function expects '{name}' to be a string.")
    return value


def _cipher(function: str, key: str) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = base64.b64decode(key, validate=True)
    except binascii.Error:
        raise TemplateError(f"The '{function}' function: the key is not base64") from None
    if len(raw) not in (16, 24, 32):
        raise TemplateError(
            f"The '{function}' function: the key must decode to 16, 24 or 32 bytes "
            f"(AES-128/192/256), not {len(raw)}"
        )
    return AESGCM(raw)


def encrypt(key: Any = None, plaintext: Any = None) -> str:
    names = "'key' and 'plaintext'"
    data = _text("encrypt", names, "plaintext", plaintext).encode("utf-8")
    cipher = _cipher("encrypt", _text("encrypt", names, "key", key))
    iv = os.urandom(_IV_LENGTH)
    return base64.b64encode(iv + cipher.encrypt(iv, data, None)).decode("ascii")


def decrypt(key: Any = None, encrypted: Any = None) -> str:
    from cryptography.exceptions import InvalidTag

    names = "'key' and 'encrypted'"
    value = _text("decrypt", names, "encrypted", encrypted)
    cipher = _cipher("decrypt", _text("decrypt", names, "key", key))
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise TemplateError("The 'decrypt' function: the encrypted value is not base64") from None
    if len(raw) <= _IV_LENGTH:
        raise TemplateError("The 'decrypt' function: the encrypted value is too short")
    try:
        clear: bytes = cipher.decrypt(raw[:_IV_LENGTH], raw[_IV_LENGTH:], None)
    except InvalidTag:
        raise TemplateError(
            "The 'decrypt' function: the value does not decrypt with this key (wrong key, or "
            "the value was altered)"
        ) from None
    return clear.decode("utf-8")


FUNCTIONS: dict[str, Callable[..., Any]] = {"encrypt": encrypt, "decrypt": decrypt}
