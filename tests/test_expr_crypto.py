"""Kestra's encrypt()/decrypt() (EncryptDecryptFunctionTest; EncryptionService.java: AES/GCM,
128-bit tag, base64 key, base64 of a 12-byte IV followed by the ciphertext and tag)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from daemon.expr.renderer import Renderer
from daemon.sdk.errors import TemplateError

# The key of Kestra's docs example (`openssl rand -base64 32` style: 32 bytes once decoded).
KEY = "NWRhUDc5TERWY2QyMDhSSHhfeWYzbjJpNE5vb3M5NnY="


@pytest.fixture(scope="module")
def r() -> Renderer:
    return Renderer()


def test_encrypt_then_decrypt_gives_the_text_back(r: Renderer) -> None:
    """EncryptDecryptFunctionTest.encryptDecrypt; two encryptions differ (a random IV)."""
    encrypted = r.render("{{ encrypt(secretKey, 'toto') }}", {"secretKey": KEY})
    again = r.render("{{ encrypt(secretKey, 'toto') }}", {"secretKey": KEY})
    assert encrypted != again
    assert r.render(f"{{{{ decrypt(secretKey, '{encrypted}') }}}}", {"secretKey": KEY}) == "toto"
    named = "{{ decrypt(key=k, encrypted=e) }}"
    assert r.render(named, {"k": KEY, "e": again}) == "toto"


def test_a_value_encrypted_as_kestra_does_decrypts(r: Renderer) -> None:
    """EncryptionService.encrypt's layout built by hand: base64(iv || ciphertext+tag)."""
    iv = bytes(range(12))
    sealed = AESGCM(base64.b64decode(KEY)).encrypt(iv, "héllo".encode(), None)
    value = base64.b64encode(iv + sealed).decode()
    assert r.render("{{ decrypt(k, v) }}", {"k": KEY, "v": value}) == "héllo"
    mine = base64.b64decode(r.render("{{ encrypt(k, 'abc') }}", {"k": KEY}))
    assert AESGCM(base64.b64decode(KEY)).decrypt(mine[:12], mine[12:], None) == b"abc"


@pytest.mark.parametrize(
    ("template", "variables", "message"),
    [
        ("{{ encrypt('toto') }}", {},
         "The 'encrypt' function expects two arguments 'key' and 'plaintext'."),
        ("{{ decrypt('toto') }}", {},
         "The 'decrypt' function expects two arguments 'key' and 'encrypted'."),
        ("{{ encrypt('dG90bw==', 'x') }}", {},
         "the key must decode to 16, 24 or 32 bytes (AES-128/192/256), not 4"),
        ("{{ encrypt('not base64!', 'x') }}", {}, "the key is not base64"),
        ("{{ decrypt(k, 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA') }}", {"k": KEY},
         "the value does not decrypt with this key (wrong key, or the value was altered)"),
        ("{{ decrypt(k, 'AAAA') }}", {"k": KEY}, "the encrypted value is too short"),
    ],
)  # fmt: skip
def test_bad_arguments_are_clear_errors(
    r: Renderer, template: str, variables: dict[str, str], message: str
) -> None:
    """EncryptDecryptFunctionTest.missingParameter, and the key and value checks."""
    with pytest.raises(TemplateError) as caught:
        r.render(template, variables)
    assert message in str(caught.value)
