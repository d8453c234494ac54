"""Data for the model tests: the CDNOW sample (bundled with the package when present,
else the shared data directory) and the BG/BB donations example."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    return Path(os.environ.get("HUITOUKE_SHARED_DATA", REPO.parent / "shared" / "data"))


def cdnow_sample_path() -> Path | None:
    try:
        from huitouke.data import CDNOW_SAMPLE

        if Path(CDNOW_SAMPLE).exists():
            return Path(CDNOW_SAMPLE)
    except ImportError:
        pass
    path = shared_data_dir() / "cdnow" / "CDNOW_sample.txt"
    return path if path.exists() else None


def load_cdnow_orders() -> pd.DataFrame:
    path = cdnow_sample_path()
    if path is None:
        pytest.skip(
            "CDNOW sample not found: neither huitouke.data nor "
            "$HUITOUKE_SHARED_DATA/cdnow/CDNOW_sample.txt"
        )
    raw = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        names=["master_id", "customer_id", "date", "cds", "amount"],
        dtype={"date": str},
    )
    raw["ordered_at"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    return raw[["customer_id", "ordered_at", "amount"]]


@pytest.fixture(scope="session")
def cdnow_orders() -> pd.DataFrame:
    return load_cdnow_orders()


@pytest.fixture(scope="session")
def cdnow_split(cdnow_orders: pd.DataFrame) -> pd.DataFrame:
    from huitouke.models import calibration_and_holdout_summary

    return calibration_and_holdout_summary(cdnow_orders, "1997-09-30", "1998-06-30", unit="W")


@pytest.fixture(scope="session")
def donations() -> pd.DataFrame:
    path = shared_data_dir() / "donations" / "donations.csv"
    if not path.exists():
        pytest.skip("donations.csv not found under $HUITOUKE_SHARED_DATA/donations/")
    return pd.read_csv(path)


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)
