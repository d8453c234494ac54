"""The ``wecom_contact`` channel: a 1:1 message to an external contact, sent by the staff
member who added them (WeCom's ``add_msg_template`` task, which the staff member confirms in
WeCom). The outbox recipient is the contact's ``external_userid``; the payload names the
sender. Never re-sent after a crash (``at_most_once``): WeCom has no idempotency key for
message tasks, so a resend would be a second task."""

from __future__ import annotations

from datetime import UTC, datetime

from huitouke.messaging.channels.base import (
    Delivery,
    OutgoingMessage,
    PermanentSendError,
    SendResult,
)
from huitouke.messaging.channels.wecom_api import WeComClient

__all__ = ["WeComContactChannel"]


class WeComContactChannel:
    name = "wecom_contact"
    delivery: Delivery = "at_most_once"

    def __init__(self, client: WeComClient) -> None:
        self.client = client

    def send(self, message: OutgoingMessage) -> SendResult:
        sender = str(message.payload.get("sender") or "")
        if not message.recipient or not sender:
            raise PermanentSendError(
                "the customer has no WeCom contact (external_userid and staff member)",
                code="wecom.no_contact",
            )
        msgid = self.client.add_msg_template(sender, [message.recipient], message.text)
        return SendResult(
            provider="wecom", provider_message_id=msgid or None, sent_at=datetime.now(UTC)
        )

    def close(self) -> None:
        self.client.close()
