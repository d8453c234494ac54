"""Private domain (私域) on WeCom 企业微信: channel live codes, the add-contact callback, welcome
messages with a short survey, tags both ways, and 1:1 messages to external contacts.

- :mod:`.crypto` — the callback's signature and AES-256-CBC body encryption, as WeCom
  specifies (checked against WeCom's published example);
- :mod:`huitouke.messaging.channels.wecom_api` — the customer-contact API (access token,
  contact ways, external contacts, welcome messages, corp tags, message tasks), with the
  base URL a setting so a local fake can stand in (it lives with the channels: the
  ``wecom_contact`` channel sends through it);
- :mod:`.tables` — contact ways (渠道活码) and the external contacts they brought;
- :mod:`.service` — what a callback event does: link the contact to a customer (union id,
  else a new customer ``wecom:<external_userid>``), record where it came from, apply the
  code's tags (here and in WeCom), send the welcome message with the survey link;
- :mod:`huitouke.messaging.channels.wecom_contact` — the ``wecom_contact`` message channel
  (a 1:1 message task to the contact from the staff member who added them), under the same
  caps, quiet hours and consent as every channel.
"""
