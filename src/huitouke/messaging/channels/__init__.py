"""Channels (ports): SMTP email, signed webhooks, WeCom/DingTalk robots, Aliyun/Tencent SMS, file."""

from huitouke.messaging.channels.base import (
    Channel,
    ChannelError,
    Delivery,
    OutgoingMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)

__all__ = [
    "Channel",
    "ChannelError",
    "Delivery",
    "OutgoingMessage",
    "PermanentSendError",
    "SendResult",
    "TransientSendError",
]
