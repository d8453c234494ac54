"""`huitouke loyalty …` end to end on a real SQLite file (in process, through main())."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from huitouke.cli.main import main

from .conftest import EXAMPLES


def _run(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> tuple[str, str]:
    capsys.readouterr()
    try:
        main(["loyalty", *args])
        rc = 0
    except SystemExit as exc:
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert rc == code, err
    return out, err


def test_cli_covers_the_operations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--database-url", f"sqlite:///{tmp_path / 'h.db'}"]
    _run(capsys, "program", "save", str(EXAMPLES / "shop.yaml"), *db)
    apply = [
        "order",
        "apply",
        "--order-id",
        "o1",
        "--customer",
        "c1",
        "--amount",
        "300",
        "--at",
        "2026-05-01T12:00:00+08:00",
        *db,
    ]
    out = json.loads(_run(capsys, *apply)[0])
    # what POST /v1/orders/batch answers per event: the order as stored, its loyalty effects
    assert out["order"]["amount"] == "300.0000" and out["order"]["currency"] == "CNY"
    assert out["loyalty"]["points_earned"] == "310" and out["replayed"] is False
    code = out["loyalty"]["coupons_issued"][0]["code"]
    assert json.loads(_run(capsys, *apply)[0])["replayed"] is True
    _run(capsys, "stored-value", "topup", "c1", "200", "--key", "t1", *db)
    assert json.loads(_run(capsys, "coupon", "gift", code, "c1", "c2", *db)[0])["holder"] == "c2"
    _, err = _run(
        capsys, "coupon", "redeem", code, "--order-id", "x", "--customer", "c1", *db, code=5
    )
    assert "coupon.not_holder" in err
    show = json.loads(_run(capsys, "customer", "show", "c1", *db)[0])
    assert show["points_balance"] == "310" and show["stored_value"]["paid"] == "200"
    assert json.loads(_run(capsys, "verify", *db)[0]) == []


def test_cli_validate_names_the_bad_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("earn:\n  points_per_unit: lots\n", encoding="utf-8")
    _, err = _run(capsys, "program", "validate", str(f), code=2)
    assert "earn.points_per_unit" in err


def test_apply_file_in_batches_equals_one_by_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = [
        {
            "order_id": f"o{i}",
            "customer_id": f"c{i % 3}",
            "ordered_at": f"2026-05-0{1 + i % 5}T12:00:00+08:00",
            "amount": str(100 + 37 * i),
            "currency": "CNY",
            "status": "paid",
        }
        for i in range(7)
    ]
    events.append({**events[2], "status": "refunded", "refunded_amount": events[2]["amount"]})
    stream = tmp_path / "events.jsonl"
    stream.write_text("\n".join(json.dumps(e) for e in events) + "\n", encoding="utf-8")

    balances = {}
    for batch in ("1", "3"):
        db = ["--database-url", f"sqlite:///{tmp_path / f'b{batch}.db'}"]
        _run(capsys, "program", "save", str(EXAMPLES / "shop.yaml"), *db)
        out = json.loads(_run(capsys, "order", "apply-file", str(stream), "--batch", batch, *db)[0])
        assert out == {"events": 8, "replayed": 0}
        again = _run(capsys, "order", "apply-file", str(stream), "--batch", batch, *db)[0]
        assert json.loads(again) == {"events": 8, "replayed": 8}
        balances[batch] = [
            json.loads(_run(capsys, "customer", "show", f"c{c}", *db)[0])["points_balance"]
            for c in range(3)
        ]
        assert json.loads(_run(capsys, "verify", *db)[0]) == []
    assert balances["1"] == balances["3"]


def test_apply_file_names_the_line_of_a_bad_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--database-url", f"sqlite:///{tmp_path / 'h.db'}"]
    _run(capsys, "program", "save", str(EXAMPLES / "shop.yaml"), *db)
    good = {
        "order_id": "o1",
        "customer_id": "c1",
        "ordered_at": "2026-05-01T12:00:00+08:00",
        "amount": "100",
        "currency": "CNY",
        "status": "paid",
    }
    bad = {**good, "order_id": "o2", "amount": "-5"}
    stream = tmp_path / "events.jsonl"
    stream.write_text(json.dumps(good) + "\n\n" + json.dumps(bad) + "\n", encoding="utf-8")
    _, err = _run(capsys, "order", "apply-file", str(stream), *db, code=2)
    assert "line: 3" in err


def test_cli_stamps_visit_and_grant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--database-url", f"sqlite:///{tmp_path / 'h.db'}"]
    _run(capsys, "program", "save", str(EXAMPLES / "cafe.yaml"), *db)
    at = ["--at", "2026-05-01T09:00:00+08:00"]
    v = json.loads(_run(capsys, "stamps", "visit", "c1", "coffee", *at, "--key", "v1", *db)[0])
    assert v["added"] == 1 and v["coupons_issued"][0]["template"] == "americano"
    again = _run(capsys, "stamps", "visit", "c1", "coffee", *at, "--key", "v1", *db)[0]
    assert json.loads(again)["replayed"] is True
    same = _run(capsys, "stamps", "visit", "c1", "coffee", *at, "--key", "v2", *db)[0]
    assert json.loads(same)["ignored"] == "already_stamped_today"
    g = _run(capsys, "stamps", "grant", "c1", "coffee", "4", "--reason", "r", "--key", "g", *db)
    assert json.loads(g[0])["balance"] == 5
    _, err = _run(capsys, "stamps", "visit", "c1", "tea", "--key", "v3", *db, code=3)
    assert "stamp_card.not_found" in err
    show = json.loads(_run(capsys, "customer", "show", "c1", *db)[0])
    assert show["stamp_cards"][0]["stamps"] == 5
    assert json.loads(_run(capsys, "verify", *db)[0]) == []


def test_cli_stored_value_reverse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--database-url", f"sqlite:///{tmp_path / 'h.db'}"]
    _run(capsys, "program", "save", str(EXAMPLES / "shop.yaml"), *db)
    _run(capsys, "stored-value", "topup", "c1", "200", "--key", "t1", *db)
    _run(capsys, "stored-value", "spend", "c1", "210", "--order-id", "o1", *db)
    rev = ["stored-value", "reverse", "c1", "--order-id", "o1"]
    out = json.loads(_run(capsys, *rev, "21", "--key", "r1", *db)[0])
    assert (out["to_paid"], out["to_bonus"], out["returned"]) == ("20", "1", "21")
    assert json.loads(_run(capsys, *rev, "21", "--key", "r1", *db)[0])["replayed"] is True
    _, err = _run(capsys, *rev, "500", "--key", "r2", *db, code=4)
    assert "stored_value.return_exceeds_spend" in err
    rest = json.loads(_run(capsys, *rev, "--key", "r3", *db)[0])
    assert (rest["amount"], rest["to_paid"], rest["to_bonus"]) == ("189", "180", "9")
    show = json.loads(_run(capsys, "customer", "show", "c1", *db)[0])
    assert show["stored_value"]["paid"] == "200" and show["stored_value"]["bonus"] == "20"
    assert json.loads(_run(capsys, "verify", *db)[0]) == []


def test_order_apply_writes_the_order_and_refuses_another_identity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`order apply` records the order as POST /v1/orders does: the orders row and the
    ledger; the same order id with another customer or amount is refused (exit 4)."""
    from huitouke.store.db import Store

    url = f"sqlite:///{tmp_path / 'h.db'}"
    db = ["--database-url", url]
    _run(capsys, "program", "save", str(EXAMPLES / "shop.yaml"), *db)
    base = ["order", "apply", "--order-id", "o1", "--at", "2026-05-01T12:00:00+08:00", *db]
    first = json.loads(_run(capsys, *base, "--customer", "c1", "--amount", "300")[0])
    assert first["order"]["customer_id"] == "c1" and first["loyalty"]["points_earned"] == "310"
    for change, field in ((["--customer", "c2", "--amount", "300"], "customer_id"),
                          (["--customer", "c1", "--amount", "3000"], "amount")):  # fmt: skip
        _, err = _run(capsys, *base, *change, code=4)
        assert "order.conflict" in err and field in err
    store = Store(url)
    try:
        orders = store.load_orders().to_pylist()
    finally:
        store.dispose()
    assert [(o["order_id"], o["customer_id"], str(o["amount"])) for o in orders] == [
        ("o1", "c1", "300.0000")
    ]
    show = json.loads(_run(capsys, "customer", "show", "c1", *db)[0])
    assert show["points_balance"] == "310"
