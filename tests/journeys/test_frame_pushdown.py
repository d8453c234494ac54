"""The customers frame read from Parquet with the journeys' audience filters pushed down to
DuckDB (``frame_from_parquet(path, journeys=…)``): the customers each audience holds and the
plan's rows for them are those of the whole frame."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from huitouke.analytics.segments import LAYERS, LIFECYCLE_STAGES, RFM_SEGMENTS
from huitouke.journeys.engine import EvaluationContext, audience_mask, evaluate
from huitouke.journeys.frame import prepare
from huitouke.journeys.integration import audience_filter_sql, frame_from_parquet
from huitouke.journeys.loader import builtin_journeys
from huitouke.journeys.model import Audience, Journey
from huitouke.store.db import Store

ZONE = "America/New_York"
AS_OF = date(2026, 3, 9)  # the day after DST starts in New York


def synthetic_frame(n: int = 3000, seed: int = 7) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        # instants around local midnights, so day cuts in the zone matter
        last = datetime(2026, 3, 9, 4, 59, tzinfo=UTC) - timedelta(
            days=rng.randrange(0, 400), minutes=rng.choice([0, 1, 2, 600])
        )
        tags = rng.choice([None, [], ["vip"], ["tea", "vip"], ["coffee"]])
        rows.append(
            {
                "customer_id": f"c{i:05d}",
                "orders": rng.choice([1, 1, 2, 3, 5, 9]),
                "last_order_at": last,
                "first_order_at": last - timedelta(days=rng.randrange(0, 300)),
                "next_expected_date": None,
                "layer": rng.choice(LAYERS),
                "rfm_segment": rng.choice(RFM_SEGMENTS),
                "lifecycle": rng.choice(LIFECYCLE_STAGES),
                "p_alive": rng.choice([None, 0.05, 0.3, 0.5, 0.9]),
                "birthday": rng.choice([None, date(1990, 3, 12), date(1985, 7, 1)]),
                "points_expiring_on": None,
                "next_tier_gap_ratio": rng.choice([None, 0.1, 0.6]),
                "stamps_to_reward": rng.choice([None, 1, 4]),
                "tags": tags,
                "attributes": json.dumps(rng.choice([{}, {"city": "sh"}, {"city": "bj"}])),
                "lang": rng.choice([None, "zh", "en"]),
            }
        )
    return pd.DataFrame(rows)


def write(frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path)


AUDIENCES = [
    Audience(),
    Audience(layers=["active", "new"]),
    Audience(rfm_segments=["champions", "loyal"], lifecycles=["growth", "maturity"]),
    Audience(orders_min=2, orders_max=5),
    Audience(bought_within_days=30),
    Audience(not_bought_within_days=90),
    Audience(bought_within_days=200, not_bought_within_days=100),
    Audience(p_alive_min=0.3, p_alive_max=0.6),
    Audience(tags_any=["vip"]),
    Audience(tags_all=["tea", "vip"]),
    Audience(tags_none=["vip"]),
    Audience(tags_any=[]),
    Audience(has_birthday=True, near_next_tier_ratio=0.5, stamps_to_reward_max=2),
    Audience.model_validate({"attributes": [{"key": "city", "op": "eq", "value": "sh"}]}),
    Audience(layers=[]),
]


def test_each_audience_reads_a_superset_and_selects_the_same(tmp_path: Path) -> None:
    full = synthetic_frame()
    path = tmp_path / "frame.parquet"
    write(full, path)
    whole = frame_from_parquet(str(path))
    ca = prepare(whole, ZONE)
    today = (AS_OF - date(1970, 1, 1)).days
    types = {f.name: "" for f in pq.read_schema(path)}
    assert audience_filter_sql(Audience(), types, AS_OF) == "TRUE"
    for aud in AUDIENCES:
        j = builtin_journeys()[0].model_copy(update={"audience": aud, "enabled": True})
        read = frame_from_parquet(str(path), journeys=[j], as_of=AS_OF)
        expected = set(whole["customer_id"][audience_mask(aud, ca, today)])
        got = set(read["customer_id"][audience_mask(aud, prepare(read, ZONE), today)])
        assert got == expected, aud
        assert expected <= set(read["customer_id"])
        if aud.layers or aud.bought_within_days or aud.tags_all:
            assert len(read) < len(whole)  # the filter did push down


@pytest.mark.parametrize("journey", [j.id for j in builtin_journeys()])
def test_plan_rows_the_same(tmp_path: Path, journey: str) -> None:
    """Every built-in journey (own audience) plus one with a narrow audience: the planned and
    skipped rows of the customers read are the whole frame's for them."""
    full = synthetic_frame(seed=11)
    path = tmp_path / "frame.parquet"
    write(full, path)
    base = {j.id: j for j in builtin_journeys()}[journey]
    journeys: list[Journey] = [
        base.model_copy(update={"enabled": True}),
        base.model_copy(
            update={
                "id": "narrow",
                "enabled": True,
                "audience": Audience(layers=["active"], bought_within_days=60),
            }
        ),
    ]
    ctx = EvaluationContext(timezone=ZONE)
    whole = evaluate(journeys, frame_from_parquet(str(path)), ctx, AS_OF)
    part = evaluate(
        journeys, frame_from_parquet(str(path), journeys=journeys, as_of=AS_OF), ctx, AS_OF
    )
    keys = ["journey_id", "customer_id", "step_id", "occurrence"]
    mine = part.rows.sort_values(keys).reset_index(drop=True)
    ids = set(mine["customer_id"])
    theirs = whole.rows[whole.rows["customer_id"].isin(ids)].sort_values(keys)
    # the same values; a column's dtype may differ with which journeys had rows
    pd.testing.assert_frame_equal(mine, theirs.reset_index(drop=True), check_dtype=False)
    planned = whole.planned()
    assert set(planned["customer_id"]) <= ids  # nobody planned was left unread
    assert len(part.planned()) == len(planned)


def test_inactive_journeys_read_nobody(tmp_path: Path) -> None:
    path = tmp_path / "frame.parquet"
    write(synthetic_frame(50), path)
    j = builtin_journeys()[0].model_copy(update={"enabled": False})
    assert len(frame_from_parquet(str(path), journeys=[j], as_of=AS_OF)) == 0


def test_cli_audience_only_plans_the_same(
    store: Store, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`journeys run --frame F --audience-only` plans the items of `--frame F`; without
    --frame the option is refused."""
    from typer.testing import CliRunner

    from huitouke.cli.analytics_cmd import arrow_of
    from huitouke.cli.main import app
    from huitouke.journeys.integration import customers_frame
    from huitouke.settings import get_settings

    from .test_service_store import AS_OF as STORE_DAY
    from .test_service_store import seed

    seed(store, n=8)
    monkeypatch.setenv("HUITOUKE_DATABASE_URL", store_url)
    monkeypatch.setenv("HUITOUKE_LANG", "en")
    get_settings.cache_clear()
    try:
        frame = customers_frame(store, STORE_DAY, settings=get_settings())
        frame["attributes"] = [json.dumps(a) for a in frame["attributes"]]
        path = tmp_path / "frame.parquet"
        pq.write_table(arrow_of(frame), path)
        runner = CliRunner()
        args = ["journeys", "run", "--as-of", STORE_DAY.isoformat(), "--dry-run"]
        args += ["--format", "json", "--all-builtin", "--frame", str(path)]
        plain = runner.invoke(app, args)
        pushed = runner.invoke(app, [*args, "--audience-only"])
        assert plain.exit_code == pushed.exit_code == 0, pushed.output
        a, b = json.loads(plain.output), json.loads(pushed.output)
        assert a["items"] and a["items"] == b["items"]
        res = runner.invoke(app, [*args[:-2], "--audience-only"])
        assert getattr(res.exception, "code", None) == "input.conflicting_options"
    finally:
        get_settings.cache_clear()
