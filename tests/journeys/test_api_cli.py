"""The journeys and measurement HTTP routers (as the production app mounts them) and the CLI."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from huitouke.measurement.links import tracked_url
from huitouke.measurement.tables import link_clicks
from huitouke.service.apikeys import create_api_key
from huitouke.settings import Settings
from huitouke.store.db import Store

from .test_service_store import AS_OF, seed

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


class Keys:
    def __init__(self, store: Store) -> None:
        from datetime import UTC, datetime

        self.k: dict[str, str] = {}
        with store.begin() as conn:
            for scope in ("read", "operator", "admin"):
                self.k[scope] = create_api_key(
                    conn, scope=scope, name=f"t-{scope}", now=datetime.now(UTC)
                )[1]

    def h(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.k[scope]}"}


@pytest.fixture
def client(store: Store, store_url: str) -> Iterator[tuple[TestClient, Keys, Settings]]:
    from huitouke.service import create_app

    settings = Settings(database_url=store_url, lang="en", secret_key="s3cret", holdout_salt="api")
    app = create_app(settings, store)  # the production app mounts both routers
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, Keys(store), settings


def test_journeys_api_crud_run_and_results(
    client: tuple[TestClient, Keys, Settings], store: Store
) -> None:
    c, keys, _ = client
    seed(store, n=10)
    assert c.get("/v1/journeys").status_code == 401
    listed = c.get("/v1/journeys", headers=keys.h("read")).json()
    assert {j["id"] for j in listed} >= {"second_order", "birthday"}
    assert not any(j["enabled"] for j in listed)
    assert c.post("/v1/journeys/second_order/enable", headers=keys.h("read")).status_code == 403
    assert (
        c.post("/v1/journeys/second_order/enable", headers=keys.h("operator")).json()["enabled"]
        is True
    )
    bad = c.post(
        "/v1/journeys",
        json={"id": "x", "name": {"zh": "x", "en": "x"}, "trigger": {"type": "date"}, "steps": []},
        headers=keys.h("operator"),
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "journey.invalid"
    dry = c.post(
        "/v1/journeys/run",
        json={"as_of": AS_OF.isoformat(), "dry_run": True},
        headers=keys.h("operator"),
    ).json()
    assert dry["dry_run"] is True and {i["journey"] for i in dry["items"]} == {"second_order"}
    by_customer = {i["customer_id"]: i["reason_code"] for i in dry["items"]}
    assert by_customer["c0"] in ("consent.missing", "holdout")
    assert by_customer["c1"] in ("unsubscribed", "holdout")
    assert "planned" in by_customer.values()
    real = c.post(
        "/v1/journeys/run",
        json={"as_of": AS_OF.isoformat(), "dry_run": False},
        headers=keys.h("operator"),
    ).json()
    assert real["written"]["enqueued"] == sum(1 for i in dry["items"] if i["status"] == "planned")
    res = c.get(
        "/v1/journeys/results/all", params={"as_of": "2026-04-30"}, headers=keys.h("read")
    ).json()
    [r] = res["journeys"]
    assert r["journey_id"] == "second_order" and r["audience"] == 10
    assert c.post(
        "/v1/journeys/events",
        json={
            "order_id": "o1",
            "customer_id": "c1",
            "event": "order_shipped",
            "at": "2026-03-20T01:00:00+00:00",
        },
        headers=keys.h("operator"),
    ).json() == {"recorded": True}


def test_tracked_link_redirect_records_click(
    client: tuple[TestClient, Keys, Settings], store: Store
) -> None:
    c, _, settings = client
    url = tracked_url(
        "http://testserver",
        settings.secret_key.get_secret_value(),
        journey_id="j",
        customer_id="c1",
        step_id="s",
        occurrence="o",
        url="https://shop.example/p/9",
    )
    r = c.get(url.removeprefix("http://testserver"), follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "https://shop.example/p/9"
    # a forged token gets a page saying so (400), an old-format one a page saying it is
    # from an earlier version (410); neither records a click
    assert c.get("/r/forgedtoken", follow_redirects=False).status_code == 400
    assert c.get("/r/forged.token", follow_redirects=False).status_code == 410
    with store.connect() as conn:
        rows = conn.execute(select(link_clicks)).mappings().all()
    assert len(rows) == 1 and rows[0]["customer_id"] == "c1"
    assert "券码" in c.get("/claim/abc123").text


def test_cli_run_dry_run_json_and_validate(
    store: Store, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huitouke.cli.main import app
    from huitouke.settings import get_settings

    seed(store, n=6)
    monkeypatch.setenv("HUITOUKE_DATABASE_URL", store_url)
    monkeypatch.setenv("HUITOUKE_LANG", "en")
    get_settings.cache_clear()
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "journeys",
            "run",
            "--as-of",
            AS_OF.isoformat(),
            "--dry-run",
            "--format",
            "json",
            "--all-builtin",
            "--journey",
            "second_order",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["dry_run"] is True and len(out["items"]) == 6
    assert all(i["reason"] for i in out["items"])
    r = runner.invoke(
        app,
        [
            "journeys",
            "run",
            "--as-of",
            AS_OF.isoformat(),
            "--format",
            "json",
            "--all-builtin",
            "--journey",
            "second_order",
        ],
    )
    assert json.loads(r.output)["written"]["assignments"] == 6
    r = runner.invoke(app, ["journeys", "results", "--as-of", "2026-04-30", "--format", "json"])
    assert json.loads(r.output)["journeys"][0]["audience"] == 6
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: x\nname: {zh: a, en: b}\ntrigger: {type: holiday, holidays: [nope]}\nsteps: []\n"
    )
    r = runner.invoke(app, ["journeys", "validate", str(bad)])
    assert r.exit_code != 0
    r = runner.invoke(app, ["journeys", "list", "--format", "json"])
    assert any(j["id"] == "replenishment" for j in json.loads(r.output))
    get_settings.cache_clear()


def test_cli_run_reads_the_customers_frame_from_parquet(
    store: Store, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`journeys run --frame x.parquet` (a file, or Spark's directory of parts) plans the
    same messages as the frame computed from the store."""
    import pyarrow.parquet as pq

    from huitouke.cli.analytics_cmd import arrow_of
    from huitouke.cli.main import app
    from huitouke.journeys.integration import customers_frame
    from huitouke.settings import get_settings

    seed(store, n=8)
    monkeypatch.setenv("HUITOUKE_DATABASE_URL", store_url)
    monkeypatch.setenv("HUITOUKE_LANG", "en")
    get_settings.cache_clear()
    frame = customers_frame(store, AS_OF, settings=get_settings())
    frame.loc[frame["customer_id"] == "c3", "tags"] = pd.Series([["vip", "tea"]], index=[3])
    # typed profile attributes travel as JSON object text (a Parquet struct cannot be empty)
    frame["attributes"] = [json.dumps(a) for a in frame["attributes"]]
    parts = tmp_path / "frame.parquet"
    parts.mkdir()  # as Spark writes it: a directory of part files
    table = arrow_of(frame)
    pq.write_table(table.slice(0, 3), parts / "part-0.parquet")
    pq.write_table(table.slice(3), parts / "part-1.parquet")
    runner = CliRunner()
    args = ["journeys", "run", "--as-of", AS_OF.isoformat(), "--dry-run", "--format", "json"]
    args += ["--all-builtin", "--journey", "second_order"]
    plain = runner.invoke(app, args)
    from_parquet = runner.invoke(app, [*args, "--frame", str(parts)])
    assert plain.exit_code == from_parquet.exit_code == 0, from_parquet.output
    a, b = json.loads(plain.output), json.loads(from_parquet.output)
    assert len(a["items"]) == 8
    assert a == b
    bad = tmp_path / "missing.parquet"
    res = runner.invoke(app, [*args, "--frame", str(bad)])
    assert res.exit_code != 0
    get_settings.cache_clear()
