"""One customer across platforms (同一顾客跨平台识别): matching keys, merges and unmerges.

A Taobao nickname, a Youzan phone and a Shopify e-mail are often one person. This context
keeps which customer accounts are one **person** and why:

- :mod:`.keys` — pure: phone numbers normalised to E.164 (``phonenumbers``), e-mail
  addresses normalised, platform union ids; every key stored only as a keyed hash;
- :mod:`.tables` — ``identity_keys`` (hashed keys per account), ``identity_links`` (an
  account that belongs to another account's person) and ``identity_events`` (every merge
  and unmerge, with who, when, why and the rule);
- :mod:`.service` — index the keys, find the accounts that share one, merge, unmerge, show
  a person with its per-source accounts, and the account → person map the analytics apply.

A person is named by its **primary** account's customer id, so a person's analytics,
segments and journeys use a real customer with its own contacts; the other accounts keep
their orders, loyalty accounts and per-source views.
"""
