"""Spark Connect (``HUITOUKE_SPARK_MASTER=sc://…``): a local Spark Connect server started from
the jar PySpark 4 bundles, and the analytics and the predictions run through it equal to the
in-process engines. Skips with the reason when the connect client (grpcio …, the
``spark`` extra) or the server jar is missing.

The server is a second JVM (``spark-submit … SparkConnectServer``, ``local[2]``) started for
this module on a free port and stopped after it, by its process group.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from huitouke.analytics import Analytics, synthetic_orders
from huitouke.analytics.spark import _sessions, orders_frame, spark_session, spark_unavailable

pytestmark = pytest.mark.spark

ZONE = "Asia/Shanghai"
AS_OF = date(2024, 12, 31)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        pytest.skip("Spark Connect tests need pyspark (the spark extra)")
    home = Path(spec.origin).parent
    if not list((home / "jars").glob("spark-connect_*.jar")):
        pytest.skip("this pyspark bundles no Spark Connect server jar")
    if importlib.util.find_spec("grpc") is None:
        pytest.skip("the Spark Connect client needs grpcio (pip install 'huitouke[spark]')")
    reason = spark_unavailable("local[2]")  # the server needs Java like local mode
    if reason is not None:
        pytest.skip(f"Spark Connect server needs Java: {reason}")
    port = _free_port()
    log = tmp_path_factory.mktemp("connect") / "server.log"
    env = {**os.environ, "SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(home / "bin" / "spark-submit"),
                "--class",
                "org.apache.spark.sql.connect.service.SparkConnectServer",
                "--master",
                "local[2]",
                "--conf",
                f"spark.connect.grpc.binding.port={port}",
                "--conf",
                "spark.ui.enabled=false",
                "--conf",
                "spark.sql.shuffle.partitions=2",
                "spark-internal",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group, stopped as one below
        )
    try:
        deadline = time.monotonic() + 240
        while b"Spark Connect server started" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Spark Connect server did not start:\n{log.read_text()[-2000:]}")
            time.sleep(1)
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_analytics_and_predictions_through_spark_connect(connect_url: str) -> None:
    orders = synthetic_orders(6000, 1200, seed=3)
    mark = os.environ.get("SPARK_CONNECT_MODE_ENABLED")
    session: Any = spark_session(connect_url)
    assert type(session).__module__.startswith("pyspark.sql.connect")
    try:
        _check(session, orders)
    finally:
        session.stop()
        _sessions.pop(connect_url, None)
        # PySpark marks the process as Spark Connect; unmark it so that the other Spark
        # tests of this run make their local session again
        if mark is None:
            os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)


def _check(session: Any, orders: Any) -> None:
    from huitouke.analytics.spark import SparkAnalytics
    from huitouke.prediction import predict
    from huitouke.prediction.spark import predict_spark

    with (
        SparkAnalytics(orders, timezone=ZONE, session=session) as sp,
        Analytics(orders, timezone=ZONE) as du,
    ):
        assert sp.metrics_json("month") == du.metrics_json("month")
        pd.testing.assert_frame_equal(sp.customers(AS_OF), du.customers(AS_OF), check_exact=True)
    run = predict_spark(
        orders_frame(session, orders), as_of=AS_OF, timezone=ZONE, margin=0.3, discount_rate=0.1
    )
    got = run.to_prediction().customers
    ref = predict(orders, as_of=AS_OF, timezone=ZONE, margin=0.3, discount_rate=0.1).customers
    assert got["customer_id"].tolist() == ref["customer_id"].tolist()
    np.testing.assert_allclose(
        got["p_alive"].to_numpy(float), ref["p_alive"].to_numpy(float), rtol=1e-9
    )
    assert got["next_order_median"].tolist() == ref["next_order_median"].tolist()
