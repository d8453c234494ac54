"""Messaging: contact rules, templates, channels and the exactly-once outbox.

The journeys context calls :func:`enqueue` to write messages and :func:`evaluate` (with
:class:`CustomerContext`, :class:`PlannedMessage`, :class:`Contact`) to explain a dry run;
``huitouke worker`` runs the :class:`Dispatcher`.

Errors raised here are :class:`huitouke.errors.HuitoukeError` subclasses (input, auth,
config, not-found); channels signal send failures with
:class:`~huitouke.messaging.channels.base.TransientSendError` /
:class:`~huitouke.messaging.channels.base.PermanentSendError`, which the dispatcher turns
into retries and dead letters.
"""

from huitouke.messaging.channels.base import (
    Channel,
    OutgoingMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)
from huitouke.messaging.consent import load_customer_contexts, record_consent, unsubscribe
from huitouke.messaging.dispatcher import Dispatcher, DispatchStats, TokenBucket
from huitouke.messaging.outbox import (
    EnqueueCounts,
    OutboxMessage,
    campaign_cost,
    enqueue,
    list_messages,
    retry_messages,
    status_counts,
)
from huitouke.messaging.rules import (
    REASON_CODES,
    Cap,
    Contact,
    ContactPolicy,
    CustomerContext,
    Decision,
    PlannedMessage,
    evaluate,
    parse_caps,
)
from huitouke.messaging.sms import SmsCount, compose_sms, count_sms, estimate_cost
from huitouke.messaging.templates import MessageTemplate, Rendered, render, template_context
from huitouke.messaging.tokens import make_unsubscribe_token, verify_unsubscribe_token

__all__ = [
    "REASON_CODES",
    "Cap",
    "Channel",
    "Contact",
    "ContactPolicy",
    "CustomerContext",
    "Decision",
    "DispatchStats",
    "Dispatcher",
    "EnqueueCounts",
    "MessageTemplate",
    "OutboxMessage",
    "OutgoingMessage",
    "PermanentSendError",
    "PlannedMessage",
    "Rendered",
    "SendResult",
    "SmsCount",
    "TokenBucket",
    "TransientSendError",
    "campaign_cost",
    "compose_sms",
    "count_sms",
    "enqueue",
    "estimate_cost",
    "evaluate",
    "list_messages",
    "load_customer_contexts",
    "make_unsubscribe_token",
    "parse_caps",
    "record_consent",
    "render",
    "retry_messages",
    "status_counts",
    "template_context",
    "unsubscribe",
    "verify_unsubscribe_token",
]
