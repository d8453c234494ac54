"""`--engine` of the analytics commands: a wrong value and a Spark that cannot run here are
clear errors (no JVM needed for these)."""

from __future__ import annotations

from pathlib import Path

import pytest

from huitouke.analytics import spark as spark_mod
from huitouke.cli.main import main
from huitouke.errors import ConfigError
from huitouke.settings import get_settings


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The command as the installed `huitouke` runs it: exit code and stderr."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    return int(e.value.code or 0), capsys.readouterr().err


CSV = "order_id,customer_id,ordered_at,amount,status\n1,a,2024-01-31 23:59,10,paid\n"


@pytest.fixture
def orders_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HUITOUKE_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("HUITOUKE_TIMEZONE", "Asia/Shanghai")
    get_settings.cache_clear()
    p = tmp_path / "orders.csv"
    p.write_text(CSV, encoding="utf-8")
    yield p
    get_settings.cache_clear()


@pytest.fixture
def no_java(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    # a master no session was made for in this process
    monkeypatch.setenv("HUITOUKE_SPARK_MASTER", "local[1]")
    get_settings.cache_clear()


def test_unknown_engine(orders_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["metrics", str(orders_csv), "--engine", "polars"], capsys)
    assert code == 2
    assert "input.bad_engine" in err and "duckdb、spark" in err


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_spark_without_java(
    orders_csv: Path,
    no_java: None,
    lang: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if spark_mod.spark_unavailable("local[1]") is not None and "pyspark" in str(
        spark_mod.spark_unavailable("local[1]")
    ):
        pytest.skip("pyspark is not installed: the Java check is not reached")
    monkeypatch.setenv("HUITOUKE_LANG", lang)
    get_settings.cache_clear()
    for cmd in ("metrics", "customers", "segments", "cohorts", "ladder", "decompose", "report"):
        code, err = run([cmd, str(orders_csv), "--engine", "spark"], capsys)
        assert code == 2, err
        assert "engine.spark_unavailable" in err
        assert ("no Java runtime" in err) if lang == "en" else ("Spark 引擎不可用" in err)


def test_spark_session_names_what_is_missing(
    no_java: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = spark_mod.importlib.util.find_spec

    def no_pyspark(name: str, *args: object) -> object:
        return None if name == "pyspark" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(spark_mod.importlib.util, "find_spec", no_pyspark)
    with pytest.raises(ConfigError) as e:
        spark_mod.spark_session("local[1]")
    assert e.value.code == "engine.spark_unavailable"
    assert "pip install 'huitouke[spark]'" in e.value.message
    assert e.value.details["master"] == "local[1]"
