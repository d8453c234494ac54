from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from conftest import shared_data_dir
from huitouke.data import CDNOW_MASTER

from .helpers import cdnow_orders, online_retail_orders


@pytest.fixture(scope="session")
def cdnow() -> pa.Table:
    return cdnow_orders(CDNOW_MASTER)


@pytest.fixture(scope="session")
def cdnow_pd(cdnow: pa.Table) -> pd.DataFrame:
    return cdnow.to_pandas()


@pytest.fixture(scope="session")
def online_retail() -> pa.Table:
    path = Path(shared_data_dir()) / "online_retail" / "online_retail_invoices.csv"
    if not path.is_file():
        pytest.skip(f"Online Retail data set not found at {path} (set HUITOUKE_SHARED_DATA)")
    return online_retail_orders(path)
