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
    assert out["points_earned"] == "310"
    code = out["coupons_issued"][0]["code"]
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
