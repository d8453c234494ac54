"""Loyalty (会员忠诚度): points, tiers, stamp cards, coupons, stored value, paid membership,
referrals and group buys, on an append-only ledger.

Layers:

- :mod:`~huitouke.loyalty.program` — the merchant's program (pydantic, validated);
- :mod:`~huitouke.loyalty.rules` and :mod:`~huitouke.loyalty.codes` — pure rules, no I/O;
- :mod:`~huitouke.loyalty.tables`, :mod:`~huitouke.loyalty.ledger` — the ledger tables and
  its primitives (entries, lots, locking, idempotent operations, :func:`verify_ledger`);
- :mod:`~huitouke.loyalty.vocab` and :mod:`~huitouke.loyalty.context` — the shared
  vocabulary (order events, formatting) and what every use case shares (program, clock);
- one module per mechanic (:mod:`~huitouke.loyalty.coupons`, ``points``, ``tiers``,
  ``members``, ``stored_value``, ``membership``, ``referrals``, ``group_buy``, ``expiry``,
  ``views``), and :mod:`~huitouke.loyalty.order_batch`, the one writer of order effects;
- :mod:`~huitouke.loyalty.service` — :class:`LoyaltyService`, the façade: one method per
  use case, each the mechanic module's function.

Quick start::

    from huitouke.loyalty import LoyaltyService, load_program
    svc = LoyaltyService(load_program("cafe.yaml").in_store_zone(settings.timezone))
    with store.begin() as conn:
        effects = svc.apply_order(conn, order)
"""

from huitouke.loyalty import messages as _messages  # noqa: F401  (registers texts)
from huitouke.loyalty.codes import display as display_code
from huitouke.loyalty.ledger import Discrepancy, verify_ledger
from huitouke.loyalty.program import Program, load_program
from huitouke.loyalty.programs_repo import get_program, list_programs, save_program
from huitouke.loyalty.service import BoundLoyalty, LoyaltyService, parse_order

__all__ = [
    "BoundLoyalty",
    "Discrepancy",
    "LoyaltyService",
    "Program",
    "display_code",
    "get_program",
    "list_programs",
    "load_program",
    "parse_order",
    "save_program",
    "verify_ledger",
]
