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
from pathlib import Path

import pytest

from huitouke.analytics.spark import spark_unavailable

pytestmark = pytest.mark.spark


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


#: run in a process of its own: PySpark refuses a remote session in a process that has a
#: regular one (the other Spark tests' session), and marks a process that opened a remote
#: one as Connect for good
CHECK = """
import sys
from datetime import date

import numpy as np
import pandas as pd

from huitouke.analytics import Analytics, synthetic_orders
from huitouke.analytics.spark import SparkAnalytics, orders_frame, spark_session
from huitouke.prediction import predict
from huitouke.prediction.spark import predict_spark

zone, as_of = "Asia/Shanghai", date(2024, 12, 31)
orders = synthetic_orders(6000, 1200, seed=3)
session = spark_session(sys.argv[1])
assert type(session).__module__.startswith("pyspark.sql.connect"), type(session)
with (
    SparkAnalytics(orders, timezone=zone, session=session) as sp,
    Analytics(orders, timezone=zone) as du,
):
    assert sp.metrics_json("month") == du.metrics_json("month")
    pd.testing.assert_frame_equal(sp.customers(as_of), du.customers(as_of), check_exact=True)
run = predict_spark(
    orders_frame(session, orders), as_of=as_of, timezone=zone, margin=0.3, discount_rate=0.1
)
got = run.to_prediction().customers
ref = predict(orders, as_of=as_of, timezone=zone, margin=0.3, discount_rate=0.1).customers
assert got["customer_id"].tolist() == ref["customer_id"].tolist()
np.testing.assert_allclose(got["p_alive"].to_numpy(float), ref["p_alive"].to_numpy(float), rtol=1e-9)
assert got["next_order_median"].tolist() == ref["next_order_median"].tolist()
session.stop()
print("connect parity ok", len(got))
"""


def test_analytics_and_predictions_through_spark_connect(connect_url: str) -> None:
    """Analytics (monthly metrics, customers) equal to DuckDB exactly and predictions
    (mapInArrow scoring) equal to the in-process path, through ``sc://``."""
    res = subprocess.run(
        [sys.executable, "-c", CHECK, connect_url],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "connect parity ok" in res.stdout
