from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from huitouke.store import tables as t
from huitouke.store.db import Store

REPO = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """The shared real data sets, if present (HUITOUKE_SHARED_DATA overrides)."""
    return Path(os.environ.get("HUITOUKE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_online_retail() -> Path:
    p = shared_data_dir() / "online_retail" / "online_retail_invoices.csv"
    if not p.exists():
        pytest.skip(f"the shared Online Retail data set is absent ({p}); set HUITOUKE_SHARED_DATA")
    return p


def stored_lines(store: Store) -> list[dict[str, object]]:
    """Every stored order line, in order and line order."""
    ol = t.order_lines
    with store.connect() as conn:
        # one source in these files: the lines as the file gave them
        cols = [c for c in ol.c if c.name != "source"]
        rows = conn.execute(sa.select(*cols).order_by(ol.c.order_id, ol.c.line_no)).mappings()
        return [dict(r) for r in rows]
