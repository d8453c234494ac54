"""One per-customer view, one model policy: `huitouke customers`, the journeys' customers
frame and `huitouke predict` give every customer the same P(alive) — and so the same
lifecycle stage. Before, journeys fitted BG/NBD while the CLI chose by BIC: on this shop
BG/NBD runs to a = 6e6 and the two disagreed."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from huitouke.cli.main import app
from huitouke.settings import get_settings

from .shop_files import write_shop_csv

runner = CliRunner()


def _json(*args: str) -> dict:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def test_customers_journeys_and_predict_share_the_model(tmp_path: Path) -> None:
    from huitouke.journeys.integration import customers_frame
    from huitouke.store.db import Store

    shop = write_shop_csv(
        tmp_path / "orders.csv", seed=6, customers=3000, p_repeat=0.2, rate_shape=100
    )
    result = runner.invoke(app, ["import", str(shop)])
    assert result.exit_code == 0, result.output

    predicted = _json("predict", "--format", "json")
    assert predicted["model"] != "bgnbd" or predicted["selection"]["penalizer"] > 0
    as_of = date.fromisoformat(predicted["as_of"])
    by_predict = {c["customer_id"]: c["p_alive"] for c in predicted["customers"]}

    body = _json("customers", "--format", "json", "--as-of", as_of.isoformat())
    rows = next(iter(body.values())) if isinstance(body, dict) else body
    cli = {r["customer_id"]: r for r in rows}
    assert len(cli) == len(by_predict) == 3000

    settings = get_settings()
    frame = customers_frame(Store(settings.database_url), as_of, settings=settings)
    journeys = frame.set_index("customer_id")
    for cid, p in by_predict.items():
        assert cli[cid]["p_alive"] == pytest.approx(p, rel=1e-12)
        assert journeys.loc[cid, "p_alive"] == pytest.approx(p, rel=1e-12)
        assert journeys.loc[cid, "lifecycle"] == cli[cid]["lifecycle"]
