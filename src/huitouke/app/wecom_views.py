"""The WeCom private domain as the console uses it: the channel live codes with the
contacts each brought, a new code (created in WeCom, then kept — the use case of
``huitouke wecom code add``), the external contacts linked to customers and the callback
events received. Retrying a failed event is :func:`huitouke.app.wecom.retry_event`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from huitouke.app.wecom import wecom_client
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.uow import run_read, run_write
from huitouke.wecom import service as wecom
from huitouke.wecom.tables import wecom_contacts, wecom_events

__all__ = ["add_code", "codes", "contacts", "events", "qr_svg"]


def codes(store: Store) -> list[dict[str, Any]]:
    """Every channel code with how many contacts it brought and kept."""
    return run_read(store, wecom.list_codes)


def add_code(
    store: Store,
    settings: Settings,
    *,
    code: str,
    users: list[str],
    source: str,
    tags: list[str],
    welcome_zh: str,
    welcome_en: str,
    survey: Any,
    now: datetime,
    group_chats: list[str] | None = None,
) -> dict[str, Any]:
    """Create a channel live code in WeCom and keep it (``wecom.not_configured`` without
    the corp id and contact secret)."""
    client = wecom_client(settings)
    try:
        return run_write(
            store,
            lambda conn: wecom.add_code(
                conn, client, code=code, users=users, source=source, tags=tags,
                welcome_zh=welcome_zh, welcome_en=welcome_en, survey=survey, now=now,
                group_chats=group_chats or [],
            ),
        )  # fmt: skip
    finally:
        client.close()


def contacts(store: Store, *, code: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """External contacts, latest added first, with the customer each is linked to."""

    def read(conn: Connection) -> list[dict[str, Any]]:
        q = select(wecom_contacts).order_by(wecom_contacts.c.added_at.desc()).limit(limit)
        if code:
            q = q.where(wecom_contacts.c.code == code)
        return [dict(r) for r in conn.execute(q).mappings()]

    return run_read(store, read)


def events(store: Store, *, failed: bool = False, limit: int = 100) -> list[dict[str, Any]]:
    """Callback events received, newest first."""

    def read(conn: Connection) -> list[dict[str, Any]]:
        q = select(wecom_events).order_by(wecom_events.c.event_id.desc()).limit(limit)
        if failed:
            q = q.where(wecom_events.c.status == "failed")
        return [dict(r) for r in conn.execute(q).mappings()]

    return run_read(store, read)


def qr_svg(url: str) -> str:
    """The QR code of a code's URL as an SVG data URI (drawn here: the page loads nothing
    from WeCom's servers)."""
    import segno

    return str(segno.make(url, error="m").svg_data_uri(scale=4, border=2))
