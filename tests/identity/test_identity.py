"""One customer across platforms: keys, merge and unmerge with history, analytics per person.

Through the doors users use — the CLI and the production app — on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import threading
import warnings
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import func, select

from huitouke.analytics import Analytics
from huitouke.app.orders import load_orders
from huitouke.cli.main import main
from huitouke.errors import ConflictError, InputError, NotFoundError
from huitouke.identity import service as identity
from huitouke.identity.keys import hash_key, identity_secret, normalise_email, normalise_phone
from huitouke.identity.tables import identity_keys, identity_links
from huitouke.service.apikeys import create_api_key
from huitouke.settings import Settings
from huitouke.store.db import Store

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ZONE = "Asia/Shanghai"
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _cli(*args: str, expect: int = 0) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
            rc = 0
        except SystemExit as exc:
            rc = int(exc.code or 0)
    assert rc == expect, (rc, out.getvalue(), err.getvalue())
    return out.getvalue(), err.getvalue()


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


# -- keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("138 0013 8000", "CN", "+8613800138000"),
        ("+86 138-0013-8000", "CN", "+8613800138000"),
        ("008613800138000", "CN", "+8613800138000"),
        ("13800138000", "CN", "+8613800138000"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 20 7946 0958", "CN", "+442079460958"),
        ("138****8000", "CN", None),  # a masked export number is no key
        ("12345", "CN", None),
        ("", "CN", None),
    ],
)
def test_phone_numbers_normalise_to_e164(raw: str, region: str, e164: str | None) -> None:
    assert normalise_phone(raw, region) == e164


def test_emails_normalise_and_keys_are_keyed_hashes() -> None:
    assert normalise_email("  Ana.Li@Example.COM ") == "ana.li@example.com"
    assert normalise_email("not an address") is None
    secret = identity_secret("s1")
    h = hash_key(secret, "phone", "+8613800138000")
    assert len(h) == 64 and "13800138000" not in h
    assert h != hash_key(identity_secret("s2"), "phone", "+8613800138000")
    assert h != hash_key(secret, "email", "+8613800138000")


# -- merge and unmerge ------------------------------------------------------------------------


def _customers(store: Store, *ids: str) -> None:
    from huitouke.store.tables import customers

    with store.begin() as conn:
        conn.execute(
            customers.insert(),
            [
                {"customer_id": c, "created_at": datetime(2026, 1, 1 + i, tzinfo=UTC),
                 "updated_at": NOW, "tags": [], "attributes": {}, "consent": {}}
                for i, c in enumerate(ids)
            ],
        )  # fmt: skip


def test_merge_unmerge_keep_one_person_per_account_with_history(store: Store) -> None:
    _customers(store, "a", "b", "c", "d")
    with store.begin() as conn:
        out = identity.merge(conn, ["a", "b"], actor="t", reason="same phone", now=NOW)
        assert out == {"person_id": "a", "merged": ["b"], "accounts": ["a", "b"]}
        out = identity.merge(conn, ["c", "d"], actor="t", reason="same mail", now=NOW)
        # merging a member of a person brings its whole person: c absorbs a's person
        out = identity.merge(conn, ["c", "b"], actor="t", reason="same union id", now=NOW)
        assert out["person_id"] == "c" and sorted(out["merged"]) == ["a", "b"]
        assert identity.person_map(conn) == {"a": "c", "b": "c", "d": "c"}
        with pytest.raises(ConflictError) as err:
            identity.merge(conn, ["a", "d"], actor="t", reason="again", now=NOW)
        assert err.value.code == "identity.already_merged"
    with store.begin() as conn:
        # the primary taken out: the earliest created remaining account (a) leads the rest
        out = identity.unmerge(conn, "c", actor="t", reason="wrong", now=NOW)
        assert out == {"customer_id": "c", "person_id": "a", "was_person": "c"}
        assert identity.person_map(conn) == {"b": "a", "d": "a"}
        identity.unmerge(conn, "d", actor="t", reason="wrong too", now=NOW)
        assert identity.person_map(conn) == {"b": "a"}
        with pytest.raises(ConflictError) as err:
            identity.unmerge(conn, "d", actor="t", reason="x", now=NOW)
        assert err.value.code == "identity.not_merged"
        events = identity.history(conn, "d")
        assert [e["action"] for e in events] == ["unmerge", "merge"]
        assert events[-1]["reason"] == "same mail" and events[-1]["actor"] == "t"
        assert [e["action"] for e in identity.history(conn, "c")] == ["unmerge", "merge", "merge"]
        assert identity.history(conn, "zzz") == []


def test_bad_merges_are_refused_and_store_nothing(store: Store) -> None:
    _customers(store, "a", "b")
    for ids, reason, exc, code in (
        (["a", "nobody"], "r", NotFoundError, "identity.unknown_customer"),
        (["a"], "r", InputError, "identity.too_few"),
        (["a", "a"], "r", InputError, "identity.too_few"),
        (["a", "b"], "  ", InputError, "identity.reason_required"),
    ):
        with pytest.raises(exc) as err, store.begin() as conn:
            identity.merge(conn, ids, actor="t", reason=reason, now=NOW)
        assert err.value.code == code
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(identity_links)).scalar_one() == 0
        assert identity.history(conn) == []


def test_concurrent_merges_never_chain(store_url: str, store: Store) -> None:
    """Two doors merging crosswise at once (a←b and b←a): one person results, never a link
    to a linked account (on PostgreSQL the accounts are locked; on SQLite writes queue)."""
    _customers(store, "a", "b", "c")
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(ids: list[str]) -> None:
        from huitouke.store.uow import run_write

        barrier.wait()
        try:
            run_write(store, lambda conn: identity.merge(conn, ids, actor="t", reason="r", now=NOW))
        except ConflictError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(ids,)) for ids in (["a", "b"], ["b", "c"])]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    with store.connect() as conn:
        mapping = identity.person_map(conn)
    assert not set(mapping.values()) & set(mapping)  # no chain
    assert len(set(mapping.values())) == 1 and len(mapping) == 2
    assert not errors


# -- the analytics count a person once -------------------------------------------------------


def test_apply_persons_replaces_linked_accounts_only() -> None:
    table = pa.table({"customer_id": ["a", "b", "c", "b"], "x": [1, 2, 3, 4]})
    out = identity.apply_persons(table, {"b": "a"})
    assert out.column("customer_id").to_pylist() == ["a", "a", "c", "a"]
    assert out.column("x").to_pylist() == [1, 2, 3, 4]
    assert identity.apply_persons(table, {}) is table


def test_cli_index_match_merge_makes_two_buyers_one_repeat_customer(
    store_url: str, store: Store, tmp_path: Path
) -> None:
    taobao = _write(
        tmp_path / "taobao.csv",
        [
            {"order_id": "T1", "customer_id": "tb_nick", "ordered_at": "2026-10-01 10:00",
             "amount": "100.00", "status": "paid", "phone": "138 0013 8000", "email": ""},
            {"order_id": "T2", "customer_id": "tb_other", "ordered_at": "2026-10-02 10:00",
             "amount": "50.00", "status": "paid", "phone": "139 0000 0000", "email": ""},
        ],
    )  # fmt: skip
    shopify = _write(
        tmp_path / "shopify.csv",
        [
            {"order_id": "S1", "customer_id": "sh_9001", "ordered_at": "2026-10-20 10:00",
             "amount": "80.00", "status": "paid", "phone": "+86 138-0013-8000",
             "email": "Ana@Example.com"},
        ],
    )  # fmt: skip
    _cli("import", str(taobao), "--source", "taobao", "--database-url", store_url)
    _cli("import", str(shopify), "--source", "shopify", "--database-url", store_url)

    def buyers() -> tuple[int, int]:
        with Analytics(load_orders(store), timezone=ZONE) as an:
            cust = an.customers(date(2026, 10, 31))
        return len(cust), int((cust["orders"] >= 2).sum())

    assert buyers() == (3, 0)
    out, _ = _cli("identity", "index", "--database-url", store_url)
    assert "3" in out
    with store.connect() as conn:
        stored = {r.key_hash for r in conn.execute(select(identity_keys))}
    assert stored and not any("13800138000" in h for h in stored)  # hashed, never clear
    out, _ = _cli("identity", "matches", "--json", "--database-url", store_url)
    found = json.loads(out)
    assert found == [
        {"customer_ids": ["tb_nick", "sh_9001"], "kinds": ["phone"], "primary": "tb_nick"}
    ] or found == [
        {"customer_ids": ["sh_9001", "tb_nick"], "kinds": ["phone"], "primary": "sh_9001"}
    ]
    _cli("identity", "matches", "--apply", "--database-url", store_url)
    assert buyers() == (2, 1)  # one person with two orders: a repeat customer
    out, _ = _cli("identity", "show", "sh_9001", "--database-url", store_url)
    shown = json.loads(out)
    sources = {a["customer_id"]: [s["source"] for s in a["sources"]] for a in shown["accounts"]}
    assert sources == {"tb_nick": ["taobao"], "sh_9001": ["shopify"]}
    assert (
        load_orders(store, per_person=False).column("customer_id").to_pylist().count("sh_9001") == 1
    )  # the per-source view keeps the account
    _, err = _cli("identity", "merge", "tb_nick", "sh_9001", "--reason", "x",
                  "--database-url", store_url, expect=4)  # fmt: skip
    assert "identity.already_merged" in err
    out, _ = _cli("identity", "unmerge", "sh_9001", "--reason", "two people",
                  "--database-url", store_url)  # fmt: skip
    assert buyers() == (3, 0)
    out, _ = _cli("identity", "history", "sh_9001", "--database-url", store_url)
    assert [e["action"] for e in json.loads(out)] == ["unmerge", "merge"]


def test_rest_doors_scope_and_person_view(store_url: str, store: Store) -> None:
    from huitouke.service import create_app

    _customers(store, "a", "b")
    with store.begin() as conn:
        read = create_api_key(conn, scope="read", name="r", now=NOW)[1]
        op = create_api_key(conn, scope="operator", name="o", now=NOW)[1]
    app = create_app(Settings(database_url=store_url, lang="en"), store)
    with TestClient(app, raise_server_exceptions=False) as client:
        body = {"customer_ids": ["a", "b"], "reason": "same e-mail"}
        r = client.post("/v1/identity/merge", json=body,
                        headers={"Authorization": f"Bearer {read}"})  # fmt: skip
        assert r.status_code == 403
        r = client.post("/v1/identity/merge", json=body, headers={"Authorization": f"Bearer {op}"})
        assert r.status_code == 200, r.text
        assert r.json()["person_id"] == "a"
        r = client.post("/v1/identity/merge", json=body, headers={"Authorization": f"Bearer {op}"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "identity.already_merged"
        r = client.get("/v1/identity/b", headers={"Authorization": f"Bearer {read}"})
        assert r.status_code == 200
        assert [a["customer_id"] for a in r.json()["accounts"]] == ["a", "b"]
        r = client.get("/v1/identity/nobody", headers={"Authorization": f"Bearer {read}"})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "identity.unknown_customer"
        r = client.post(
            "/v1/identity/unmerge", json={"customer_id": "b", "reason": ""},
            headers={"Authorization": f"Bearer {op}"},
        )  # fmt: skip
        assert r.status_code == 422
        r = client.get("/v1/identity/history", headers={"Authorization": f"Bearer {read}"})
        assert [e["action"] for e in r.json()] == ["merge"]
        r = client.post("/v1/identity/index", headers={"Authorization": f"Bearer {op}"})
        assert r.status_code == 200 and r.json()["accounts"] == 2
        r = client.get("/v1/identity/matches", headers={"Authorization": f"Bearer {read}"})
        assert r.status_code == 200 and r.json() == []
