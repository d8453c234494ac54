"""The driver's memory of a Spark session the engine starts: the setting, else half of the
machine's memory for a local master (Spark's own default of 1g is the whole of Spark's
memory there), nothing for a cluster or Spark Connect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from huitouke.analytics import spark as spark_mod
from huitouke.settings import get_settings


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.delenv("HUITOUKE_SPARK_DRIVER_MEMORY", raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_driver_memory_of_a_local_session_is_half_the_machine(
    settings_env: pytest.MonkeyPatch,
) -> None:
    import os

    total_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024**2
    value = spark_mod.driver_memory("local[2]")
    assert value is not None and value.endswith("m")
    assert int(value[:-1]) == max(1024, total_mib // 2)
    assert spark_mod.driver_memory("local[*]") == value
    # a cluster's driver memory comes from its own defaults; Connect starts no driver here
    assert spark_mod.driver_memory("spark://master:7077") is None
    assert spark_mod.driver_memory("sc://connect:15002") is None


def test_driver_memory_from_the_setting(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("HUITOUKE_SPARK_DRIVER_MEMORY", " 6G ")
    get_settings.cache_clear()
    assert spark_mod.driver_memory("local[2]") == "6g"
    assert spark_mod.driver_memory("spark://master:7077") == "6g"
    assert spark_mod.driver_memory("sc://connect:15002") is None


def test_bad_driver_memory_setting_is_refused(settings_env: pytest.MonkeyPatch) -> None:
    from huitouke.errors import ConfigError

    settings_env.setenv("HUITOUKE_SPARK_DRIVER_MEMORY", "lots")
    get_settings.cache_clear()
    with pytest.raises(ConfigError) as e:
        get_settings()
    assert e.value.code == "settings.invalid"
    assert "HUITOUKE_SPARK_DRIVER_MEMORY='lots'" in e.value.message
    assert "例如 8g" in (e.value.message_zh or "")
