"""Consent columns of an imported file go through the one consent use case (`set_consents`,
as an automated source): they become consent events, never flags written beside them, and
they never override the customer's own recorded choice — through `huitouke import`, on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from huitouke.app.consent import consent_views
from huitouke.cli.main import main
from huitouke.messaging.consent import unsubscribe
from huitouke.messaging.tables import consent_events
from huitouke.store.db import Store
from huitouke.store.tables import customers

FIRST = """order_id,customer_id,ordered_at,amount,consent_sms,Accepts Email Marketing
o1,c1,2026-01-02 10:00:00,10,yes,yes
o2,c2,2026-01-03 10:00:00,12,是,
o3,c3,2026-01-03 11:00:00,8,,no
o4,c4,2026-01-04 10:00:00,9,maybe,
"""
# c1 says yes to SMS again and no to e-mail; c2 yes to SMS; c3 no to e-mail
SECOND = """order_id,customer_id,ordered_at,amount,sms_consent,email_opt_in
o5,c1,2026-02-02 10:00:00,10,true,false
o6,c2,2026-02-03 10:00:00,12,1,
o7,c3,2026-02-03 11:00:00,8,,0
"""


def _import(path: Path, url: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    rejects = path.with_name(f"{path.stem}.rejects.csv")
    main(
        ["import", str(path), "--preset", "generic", "--database-url", url, "--json",
         "--rejects", str(rejects)]
    )  # fmt: skip
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def _views(store: Store) -> dict[str, dict[str, bool]]:
    with store.connect() as conn:
        return consent_views(conn, ["c1", "c2", "c3", "c4"])


def test_imported_consent_is_recorded_as_events_and_yields_to_the_customers_choice(
    store_url: str, store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text(FIRST, encoding="utf-8")
    second.write_text(SECOND, encoding="utf-8")

    out = _import(first, store_url, capsys)
    assert out["orders_inserted"] == 3 and out["rows_rejected"] == 1
    assert out["rejects_by_reason"] == {"import.bad_consent": 1}
    assert out["consent_recorded"] == 3 and out["consent_kept"] == 0
    views = _views(store)
    assert views["c1"] == {"email": True, "sms": True}
    assert views["c2"] == {"sms": True}
    assert views["c3"] == {}  # a "no" where nothing was given changes nothing
    assert views["c4"] == {}  # its row was refused: nothing of it is recorded
    with store.connect() as conn:
        # the flags column is not a second path: consent lives in the events
        assert {r.customer_id: r.consent for r in conn.execute(select(customers))} == {
            "c1": {},
            "c2": {},
            "c3": {},
        }
        sources = {
            (r.customer_id, r.channel, r.action, r.source, r.detail["explicit"])
            for r in conn.execute(select(consent_events))
        }
    assert ("c1", "sms", "granted", "import", False) in sources

    # the customers' own choices: c1 unsubscribes from SMS, c2 opts out of SMS and c3
    # opts in to e-mail by asking (recorded through the CLI)
    with store.begin() as conn:
        unsubscribe(conn, "c1", "sms", source="unsubscribe_link", at=datetime.now(UTC))
    main(["profile", "consent", "c2", "sms=off", "--database-url", store_url])
    main(["profile", "consent", "c3", "email=on", "--database-url", store_url])
    capsys.readouterr()

    out = _import(second, store_url, capsys)
    # c1's e-mail was decided by the import alone: the new file's "no" is recorded; the
    # three channels the customers chose themselves are kept
    assert out["consent_recorded"] == 1 and out["consent_kept"] == 3
    views = _views(store)
    assert views["c1"] == {"email": False, "sms": False}
    assert views["c2"] == {"sms": False}
    assert views["c3"] == {"email": True}
