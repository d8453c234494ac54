"""Secrets at rest: credentials the store keeps (a connector's access token, a channel's
password) are encrypted with AES-256-GCM (the ``cryptography`` package) under a key from the
settings, never written in clear.

- Keys come from ``HUITOUKE_ENCRYPTION_KEYS``: comma-separated, each the URL-safe base64 of 32
  random bytes (``huitouke settings --new-encryption-key`` prints one). The first key encrypts; every key listed decrypts,
  so a key is rotated by putting the new one first and re-saving the secrets.
- A sealed value is ``v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>``: the key id (the
  first 8 hex digits of the key's SHA-256) picks the key that opens it; the 12-byte nonce is
  random per value.
- Every value is bound to its **context** (for example ``connector:shop-a:access_token``) as
  associated data: a value copied into another row, or another field of the same row, does
  not open there.

Nothing here does I/O; the store keeps the sealed strings as text. 加密保存的凭据。
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from huitouke.errors import ConfigError, InputError

__all__ = ["SecretBox", "new_key"]

_VERSION = "v1"
_NONCE = 12


def new_key() -> str:
    """A fresh key for ``HUITOUKE_ENCRYPTION_KEYS`` (URL-safe base64 of 32 random bytes)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _unreadable(context: str) -> InputError:
    return InputError(
        f"the stored secret {context} cannot be decrypted with the configured "
        "HUITOUKE_ENCRYPTION_KEYS (another key, or the value was altered); save it again",
        code="secret.unreadable",
        message_zh=f"无法用当前的 HUITOUKE_ENCRYPTION_KEYS 解密已保存的凭据 {context}"
        "(密钥不同或数据被改动);请重新保存",
        details={"context": context},
    )


@dataclass(frozen=True)
class SecretBox:
    """Seals and opens secrets with the configured keys (the first one seals)."""

    keys: tuple[bytes, ...]

    @classmethod
    def from_text(cls, text: str) -> SecretBox:
        """Keys from the setting's text; a clear :class:`ConfigError` when it is empty or a
        key is not base64 of 32 bytes (which key, by position)."""
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise ConfigError(
                "HUITOUKE_ENCRYPTION_KEYS is not set: stored credentials are encrypted with it "
                "(set one or more keys, comma-separated; `huitouke settings --new-encryption-key` makes one)",
                code="secret.no_key",
                message_zh="未设置 HUITOUKE_ENCRYPTION_KEYS:保存的凭据需用它加密"
                "(设置一个或多个密钥,以逗号分隔;`huitouke settings --new-encryption-key` 可生成)",
                details={"setting": "HUITOUKE_ENCRYPTION_KEYS"},
            )
        keys: list[bytes] = []
        for position, part in enumerate(parts, start=1):
            try:
                key = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
            except (binascii.Error, ValueError):
                key = b""
            if len(key) != 32:
                raise ConfigError(
                    f"HUITOUKE_ENCRYPTION_KEYS: key {position} is not the URL-safe base64 of "
                    "32 bytes",
                    code="secret.bad_key",
                    message_zh=f"HUITOUKE_ENCRYPTION_KEYS:第 {position} 个密钥不是 32 字节的 "
                    "URL 安全 base64",
                    details={"setting": "HUITOUKE_ENCRYPTION_KEYS", "position": position},
                )
            keys.append(key)
        return cls(tuple(keys))

    def seal(self, plaintext: str, *, context: str) -> str:
        """``plaintext`` encrypted under the first key, bound to ``context``."""
        key = self.keys[0]
        nonce = os.urandom(_NONCE)
        body = AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        return f"{_VERSION}.{_key_id(key)}.{_b64(nonce + body)}"

    def open(self, sealed: str, *, context: str) -> str:
        """The plaintext of ``sealed``; :class:`InputError` ``secret.unreadable`` when no
        configured key opens it (another key, another context, or altered)."""
        version, _, rest = sealed.partition(".")
        key_id, _, payload = rest.partition(".")
        if version != _VERSION or not key_id or not payload:
            raise _unreadable(context)
        try:
            raw = _unb64(payload)
        except (binascii.Error, ValueError):
            raise _unreadable(context) from None
        for key in self.keys:
            if _key_id(key) != key_id:
                continue
            try:
                plain = AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], context.encode("utf-8"))
            except InvalidTag:
                break
            return plain.decode("utf-8")
        raise _unreadable(context)

    def needs_reseal(self, sealed: str) -> bool:
        """True when ``sealed`` was not sealed with the current (first) key."""
        _, _, rest = sealed.partition(".")
        return rest.partition(".")[0] != _key_id(self.keys[0])
