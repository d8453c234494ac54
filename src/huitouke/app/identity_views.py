"""One customer across platforms, as the console uses it: the person an account belongs to
with its accounts, their sources and their matching keys (only the keyed hash's first
characters — the key itself is stored nowhere), the history, and merge and unmerge with a
reason. Merge, unmerge, person and history are the identity context's own functions, the
same the CLI (``huitouke identity``) and ``/v1/identity`` call; each is one unit of work."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from huitouke.identity import service as identity
from huitouke.identity.tables import identity_keys
from huitouke.store.db import Store
from huitouke.store.uow import run_read, run_write

__all__ = ["HASH_SHOWN", "history", "merge", "person_view", "unmerge"]

#: how many characters of a key's hash the pages show (enough to tell two keys apart)
HASH_SHOWN = 10


def _keys(conn: Connection, accounts: list[str]) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = defaultdict(list)
    q = (
        select(identity_keys.c.customer_id, identity_keys.c.kind, identity_keys.c.key_hash)
        .where(identity_keys.c.customer_id.in_(accounts))
        .order_by(identity_keys.c.customer_id, identity_keys.c.kind, identity_keys.c.key_hash)
    )
    for cid, kind, key_hash in conn.execute(q):
        out[cid].append({"kind": kind, "hash": key_hash[:HASH_SHOWN] + "…"})
    return dict(out)


def person_view(store: Store, customer_id: str, *, history_limit: int = 50) -> dict[str, Any]:
    """The person ``customer_id`` belongs to (``identity.unknown_customer`` when there is
    no such customer): accounts (primary first) with how each was linked, orders per
    source, matching keys as shortened hashes; the merges and unmerges naming it."""

    def read(conn: Connection) -> dict[str, Any]:
        view = identity.person(conn, customer_id)
        accounts = [a["customer_id"] for a in view["accounts"]]
        keys = _keys(conn, accounts)
        for a in view["accounts"]:
            a["match_keys"] = keys.get(a["customer_id"], [])
        shared: dict[tuple[str, str], int] = defaultdict(int)
        for ks in keys.values():
            for k in ks:
                shared[(k["kind"], k["hash"])] += 1
        view["shared_keys"] = sorted(kind for (kind, _), n in shared.items() if n > 1)
        view["history"] = identity.history(conn, view["person_id"], limit=history_limit)
        return view

    return run_read(store, read)


def merge(
    store: Store, customer_ids: list[str], *, actor: str, reason: str, now: datetime
) -> dict[str, Any]:
    """Make these accounts one person (the first one's person absorbs the others)."""
    return run_write(
        store,
        lambda conn: identity.merge(conn, customer_ids, actor=actor, reason=reason, now=now),
    )


def unmerge(
    store: Store, customer_id: str, *, actor: str, reason: str, now: datetime
) -> dict[str, Any]:
    """Take ``customer_id`` out of its person."""
    return run_write(
        store,
        lambda conn: identity.unmerge(conn, customer_id, actor=actor, reason=reason, now=now),
    )


def history(store: Store, customer_id: str | None = None, *, limit: int = 100) -> list[Any]:
    """Merges and unmerges, newest first (of one account when given)."""
    return run_read(store, lambda conn: identity.history(conn, customer_id, limit=limit))
