"""Every query transpiles to Spark SQL; churn-reason structure analysis."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from huitouke.analytics import Analytics, LayerWindows, LifecycleRules, churn_reasons, read_survey
from huitouke.analytics import sql as q
from huitouke.analytics.periods import custom_range
from huitouke.errors import InputError

from .helpers import order, orders_table


@pytest.mark.parametrize("merge", [False, True])
@pytest.mark.parametrize("currency", [None, "CNY"])
def test_every_query_transpiles_to_spark(merge: bool, currency: str | None) -> None:
    w, r = LayerWindows(), LifecycleRules()
    queries = [s.sql for s in q.all_steps("Asia/Shanghai", currency, merge)]
    queries += [q.period_sql(k) for k in ("day", "week", "month", "quarter", "year")]
    queries += [q.period_sql(custom=custom_range(date(2024, 1, 1), date(2024, 3, 31)))]
    queries += [
        q.cohort_sql(),
        q.ladder_sql(5),
        q.category_cycles_sql(),
        q.category_cycles_sql(date(2024, 1, 1)),
    ]
    for as_of in (date(2024, 6, 30), datetime(2024, 6, 30, 12, tzinfo=UTC)):
        for lines in (False, True):
            for pa_ in (False, True):
                queries.append(q.customers_sql(as_of, w, r, with_lines=lines, with_p_alive=pa_))
    for sql in queries:
        spark = q.to_spark(sql)
        flat = re.sub(r"\s+", "", spark)
        assert flat
        # the zone conversion and the windows survive in Spark's spelling
        if "AT TIME ZONE" in sql:
            assert "FROM_UTC_TIMESTAMP(" in flat
        if "date_diff" in sql:
            assert "DATEDIFF(DAY," in flat


def test_engine_lists_its_spark_sql() -> None:
    a = Analytics(orders_table([order("1", "a", "2024-01-01")]), timezone="Asia/Shanghai")
    out = a.spark_sql(date(2024, 6, 30))
    assert list(out)[:3] == ["counted_base", "counted", "category_orders"]
    assert out["counted"].startswith("CREATE OR REPLACE TEMPORARY VIEW counted AS")
    assert {"period_metrics", "cohorts", "ladder", "customers", "category_cycles"} <= set(out)


def test_churn_reasons_structure() -> None:
    survey = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "d", "a", "e"],
            "reason": ["price", "price", "quality", "price", "delivery", "price", " "],
        }
    )
    out = churn_reasons(survey)
    assert list(out["reason"]) == ["price", "(no answer)", "delivery", "quality"]
    price = out.iloc[0]
    assert (price["customers"], price["share"], price["share_pct"]) == (3, 3 / 5, 60.0)
    with pytest.raises(InputError) as err:
        churn_reasons(pd.DataFrame({"customer_id": ["a"]}))
    assert "reason" in str(err.value)
    with pytest.raises(InputError) as err:
        churn_reasons(
            pd.DataFrame({"customer_id": ["a", None], "reason": ["x", "y"]}, index=[2, 3])
        )
    assert err.value.details["rows"] == [3]


def test_read_survey(tmp_path: Path) -> None:
    p = tmp_path / "survey.csv"
    p.write_bytes("客户ID,流失原因\nc1,价格太高\nc2,\n".encode("gb18030"))
    out = churn_reasons(read_survey(p))
    assert set(out["reason"]) == {"价格太高", "(no answer)"}
    with pytest.raises(InputError):
        read_survey(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("customer_id,reason\n")
    with pytest.raises(InputError) as err:
        read_survey(tmp_path / "empty.csv")
    assert err.value.code == "input.empty_file"
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,reason\n,price\n")
    with pytest.raises(InputError) as err:
        churn_reasons(read_survey(bad))
    assert err.value.details["rows"] == [2]  # line 2 of the file
