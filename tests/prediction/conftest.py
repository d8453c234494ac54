"""The bundled CDNOW sample, read twice: through the importer (what users run) and
independently with pandas (the reference the tests compare with)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from huitouke.core.orders import ORDERS_SCHEMA
from huitouke.data import CDNOW_SAMPLE
from huitouke.settings import get_settings

ZONE = "Asia/Shanghai"


@pytest.fixture(scope="session")
def cdnow_path() -> Path:
    if not Path(CDNOW_SAMPLE).exists():
        pytest.skip("the bundled CDNOW sample is missing from huitouke.data")
    return Path(CDNOW_SAMPLE)


@pytest.fixture(scope="session")
def cdnow_orders(cdnow_path: Path) -> pa.Table:
    from huitouke.importing import read_orders

    result = read_orders(cdnow_path, "cdnow", timezone=ZONE)
    assert not result.rejects
    return result.orders


@pytest.fixture(scope="session")
def cdnow_raw(cdnow_path: Path) -> pd.DataFrame:
    """customer_id, date (datetime64), amount straight from the text file."""
    raw = pd.read_csv(
        cdnow_path,
        sep=r"\s+",
        header=None,
        names=["customer_id", "sample_id", "date", "cds", "amount"],
        dtype={"customer_id": str, "date": str},
    )
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    return raw[["customer_id", "date", "amount"]]


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HUITOUKE_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("HUITOUKE_TIMEZONE", ZONE)
    monkeypatch.setenv("HUITOUKE_LANG", "en")
    monkeypatch.delenv("HUITOUKE_PREDICTION_MARGIN", raising=False)
    monkeypatch.delenv("HUITOUKE_PREDICTION_DISCOUNT_RATE", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def orders_table(rows: list[tuple]) -> pa.Table:
    """Canonical orders from (order_id, customer_id, UTC ISO time, amount, status,
    refunded, currency) tuples."""
    cols: dict[str, list] = {f.name: [] for f in ORDERS_SCHEMA}
    for oid, cust, when, amount, status, refunded, currency in rows:
        cols["order_id"].append(oid)
        cols["customer_id"].append(cust)
        cols["ordered_at"].append(datetime.fromisoformat(when).replace(tzinfo=UTC))
        cols["amount"].append(Decimal(amount))
        cols["currency"].append(currency)
        cols["status"].append(status)
        cols["refunded_amount"].append(Decimal(refunded))
        cols["channel"].append(None)
        cols["source"].append("default")
    return pa.table(cols, schema=ORDERS_SCHEMA)
