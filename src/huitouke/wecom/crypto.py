"""WeCom callback security: ``msg_signature`` and the encrypted body.

WeCom's construction is the WeChat one (:mod:`huitouke.core.wechat_crypto`, shared with the
WeChat 小店 connector's pushes), the receive id being the corp id; this module names it as
the WeCom code and its tests know it.
"""

from __future__ import annotations

from huitouke.core.wechat_crypto import WeChatCrypto, WeChatCryptoError, signature

__all__ = ["WeComCrypto", "WeComCryptoError", "signature"]

WeComCrypto = WeChatCrypto
WeComCryptoError = WeChatCryptoError
