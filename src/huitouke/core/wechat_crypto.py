"""WeChat callback security: ``msg_signature`` and the encrypted body — one construction
shared by WeCom 企业微信 (the customer-contact callback, :mod:`huitouke.wecom`) and the
WeChat public platform's message push in safe mode (安全模式), which WeChat 小店 uses
(:mod:`huitouke.connectors.wechat_shop`).

As WeCom publishes it (企业微信 "加解密方案说明"; the public platform's "消息加解密说明" is the
same, with the app's AppID as the receive id):

- signature = hex SHA-1 of the lexicographically sorted concatenation of the callback token,
  ``timestamp``, ``nonce`` and the encrypted text;
- key = base64 decode of the 43-character EncodingAESKey plus ``=`` (32 bytes); AES-256-CBC
  with IV = the key's first 16 bytes; PKCS#7 padding to a multiple of **32** bytes;
- plaintext = 16 random bytes ‖ message length (4 bytes, big-endian) ‖ message ‖ receive id
  (the corp id; on the public platform the AppID), and the receive id must be ours;
- the public platform's URL check (a GET with ``signature``, ``timestamp``, ``nonce``,
  ``echostr``) signs only token, timestamp and nonce (:func:`url_signature`) and is answered
  with ``echostr`` as sent.

Pure functions (``cryptography`` for AES), no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["WeChatCrypto", "WeChatCryptoError", "signature", "url_signature"]

_BLOCK = 32


class WeChatCryptoError(Exception):
    """A callback that is not WeChat's (or WeCom's): bad signature, bad padding, another
    receiver."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """The ``msg_signature`` WeChat (and WeCom) sends with these values."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest()


def url_signature(token: str, timestamp: str, nonce: str) -> str:
    """The ``signature`` of the public platform's URL check and of every push: hex SHA-1 of
    the sorted token, timestamp and nonce (no message: it authenticates no body)."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


@dataclass(frozen=True)
class WeChatCrypto:
    """The callback settings of one WeCom application or WeChat app (receive id: the corp
    id, or the AppID)."""

    token: str
    encoding_aes_key: str
    receive_id: str

    @property
    def key(self) -> bytes:
        try:
            key = base64.b64decode(self.encoding_aes_key + "=", validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise WeChatCryptoError("encoding_aes_key")
        return key

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        """Raises :class:`WeChatCryptoError` unless the signature matches (constant time)."""
        expected = signature(self.token, timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected.encode(), (msg_signature or "").lower().encode()):
            raise WeChatCryptoError("signature")

    def decrypt(self, encrypted: str) -> str:
        """The message inside ``encrypted`` (base64), checked to be for our receive id."""
        key = self.key
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise WeChatCryptoError("base64") from None
        if not raw or len(raw) % 16:
            raise WeChatCryptoError("length")
        decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
        plain = decryptor.update(raw) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= _BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise WeChatCryptoError("padding")
        body = plain[16:-pad]
        if len(body) < 4:
            raise WeChatCryptoError("length")
        (size,) = struct.unpack(">I", body[:4])
        message, receive_id = body[4 : 4 + size], body[4 + size :]
        if len(message) != size:
            raise WeChatCryptoError("length")
        if not hmac.compare_digest(receive_id, self.receive_id.encode()):
            raise WeChatCryptoError("receive_id")
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError:
            raise WeChatCryptoError("utf-8") from None

    def encrypt(self, message: str, *, random16: bytes | None = None) -> str:
        """``message`` encrypted as WeChat does (a reply, or a test's callback)."""
        key = self.key
        data = message.encode("utf-8")
        rand = random16 if random16 is not None else os.urandom(16)
        body = rand + struct.pack(">I", len(data)) + data + self.receive_id.encode()
        pad = _BLOCK - len(body) % _BLOCK
        body += bytes([pad]) * pad
        encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
        return base64.b64encode(encryptor.update(body) + encryptor.finalize()).decode("ascii")

    def open(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> str:
        """Verify, then decrypt: what a callback handler calls."""
        self.verify(msg_signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)
