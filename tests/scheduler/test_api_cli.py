"""The doors: `huitouke scheduler jobs|history|run` and `GET /v1/scheduler/jobs|runs` show the
same jobs and runs; a job run by hand calls the real use case (points expire)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from huitouke.cli.main import main
from huitouke.settings import Settings, get_settings
from huitouke.store.db import Store

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from service.conftest import make_keys

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "huitouke" / "loyalty" / "examples"


def cli(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> tuple[str, str]:
    capsys.readouterr()
    try:
        main(list(args))
        rc = 0
    except SystemExit as exc:
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert rc == code, err
    return out, err


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> Iterator[str]:
    monkeypatch.setenv("HUITOUKE_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("HUITOUKE_LANG", "en")
    get_settings.cache_clear()
    yield sqlite_url
    get_settings.cache_clear()


def test_a_job_run_by_hand_expires_points_and_shows_in_the_history(
    env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _ = cli(capsys, "scheduler", "run", "loyalty.expiry")
    assert json.loads(out)["status"] == "skipped"  # no program yet
    cli(capsys, "loyalty", "program", "save", str(EXAMPLES / "shop.yaml"))
    cli(capsys, "loyalty", "order", "apply", "--order-id", "o1", "--customer", "c1",
        "--amount", "300", "--at", "2026-05-01T12:00:00+08:00")  # fmt: skip
    # the points expire at the end of May 2027: run the job with the clock in July 2027
    monkeypatch.setenv("HUITOUKE_SCHEDULER_CLOCK_START", "2027-07-01T00:00:00+08:00")
    get_settings.cache_clear()
    out, err = cli(capsys, "scheduler", "run", "loyalty.expiry")
    ran = json.loads(out)
    assert ran["status"] == "succeeded" and ran["result"]["points"] == "310"
    assert "job loyalty.expiry ran" in err
    shown = json.loads(cli(capsys, "loyalty", "customer", "show", "c1")[0])
    assert shown["points_balance"] == "0"
    hist = json.loads(cli(capsys, "scheduler", "history", "--job", "loyalty.expiry",
                          "--format", "json")[0])  # fmt: skip
    assert [(h["trigger"], h["status"], h["error_code"]) for h in hist] == [
        ("manual", "succeeded", None),
        ("manual", "skipped", "loyalty.no_program"),
    ]
    assert hist[0]["slot"] is None and hist[0]["result"]["points"] == "310"
    table, _ = cli(capsys, "scheduler", "history")
    assert "loyalty.no_program" in table and "succeeded" in table
    failed = json.loads(cli(capsys, "scheduler", "history", "--failed", "--format", "json")[0])
    assert failed == []
    _, err = cli(capsys, "scheduler", "run", "nope", code=3)
    assert "scheduler.unknown_job" in err


def test_jobs_list_their_next_run_in_the_merchants_zone(
    env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUITOUKE_SCHEDULER_CLOCK_START", "2026-12-06T15:00:00+00:00")
    monkeypatch.setenv("HUITOUKE_SCHEDULER_SCHEDULES", "journeys=off")
    get_settings.cache_clear()
    jobs = {
        j["name"]: j for j in json.loads(cli(capsys, "scheduler", "jobs", "--format", "json")[0])
    }
    assert set(jobs) == {
        "connectors",
        "connectors.inbox",
        "identity.index",
        "journeys",
        "loyalty.bonus_release",
        "loyalty.expiry",
        "loyalty.tiers",
        "outbox",
        "scheduler.prune",
        "snapshots",
        "tasks",
        "tasks.prune",
    }
    assert jobs["tasks.prune"]["next_run"] == "2026-12-07T04:10:00+08:00"
    assert jobs["loyalty.expiry"]["next_run"] == "2026-12-07T00:05:00+08:00"
    assert jobs["outbox"]["next_run"] == "2026-12-06T23:00:15+08:00"
    assert jobs["journeys"]["next_run"] is None and jobs["journeys"]["enabled"] is False
    monkeypatch.setenv("HUITOUKE_LANG", "zh")
    get_settings.cache_clear()
    table, _ = cli(capsys, "scheduler", "jobs")
    assert "下次运行" in table and "已关闭" in table and "从未运行" in table


def test_the_api_shows_jobs_and_runs_to_read_keys(store: Store, store_url: str) -> None:
    from huitouke.app.scheduler import Registry, run_job_now
    from huitouke.service import create_app

    settings = Settings(database_url=store_url, lang="en")
    run_job_now(store, settings, Registry.load(settings), "scheduler.prune")
    keys = make_keys(store)
    with TestClient(create_app(settings, store), raise_server_exceptions=False) as c:
        assert c.get("/v1/scheduler/jobs").status_code == 401
        assert c.get("/v1/scheduler/runs").status_code == 401
        jobs = c.get("/v1/scheduler/jobs", headers=keys.h("read")).json()
        prune = next(j for j in jobs if j["name"] == "scheduler.prune")
        assert prune["last_run"]["status"] == "succeeded"
        assert prune["timezone"] == "Asia/Shanghai" and prune["next_run"].endswith("+08:00")
        runs = c.get("/v1/scheduler/runs?job=scheduler.prune", headers=keys.h("read")).json()
        assert [(r["job"], r["trigger"]) for r in runs] == [("scheduler.prune", "manual")]
        assert c.get("/v1/scheduler/runs?failed=true", headers=keys.h("read")).json() == []
        bad = c.get(
            "/v1/scheduler/runs?job=nope", headers=keys.h("read", **{"Accept-Language": "zh"})
        )
        assert bad.status_code == 404
        assert bad.json()["error"]["code"] == "scheduler.unknown_job"
        assert "没有名为" in bad.json()["error"]["message"]


def test_the_snapshot_and_connector_hooks_add_jobs_that_run(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huitouke.app.scheduler import (
        Registry,
        register_connector_pulls,
        register_snapshot_refresh,
        run_job_now,
    )
    from huitouke.app.scheduler import registry as reg_module

    Registry.load(Settings())  # the built-ins registered
    monkeypatch.setattr(reg_module, "_JOBS", dict(reg_module._JOBS))  # undone after the test
    seen: list[str] = []
    register_snapshot_refresh(lambda ctx: seen.append("snapshots") or {"refreshed": 1})
    register_connector_pulls(lambda ctx: seen.append("connectors") or None, schedule="every 1m")
    settings = Settings(scheduler_schedules="snapshots=cron 0 * * * *")
    reg = Registry.load(settings)
    assert reg.schedules["snapshots"].spec == "cron 0 * * * *"
    assert reg.schedules["connectors"].spec == "every 1m"
    assert reg.jobs["snapshots"].describe("zh") == "刷新分析快照"
    assert run_job_now(store, settings, reg, "snapshots").result == {"refreshed": 1}
    assert run_job_now(store, settings, reg, "connectors").status == "succeeded"
    assert seen == ["snapshots", "connectors"]


def test_the_snapshot_and_identity_jobs_run_the_real_use_cases(
    env: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`scheduler run snapshots` refreshes what is stale (the overview a page reads), and
    `scheduler run identity.index` hashes the customers' keys — the jobs the scheduler runs."""
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "order_id,customer_id,ordered_at,amount,status,phone\n"
        "o1,c1,2026-05-01 10:00,100,paid,138 0013 8000\n"
        "o2,c2,2026-05-03 10:00,80,paid,+86 138-0013-8000\n",
        encoding="utf-8",
    )
    cli(capsys, "import", str(orders))
    out, _ = cli(capsys, "scheduler", "run", "snapshots")
    ran = json.loads(out)
    assert ran["status"] == "succeeded"
    assert {"overview", "customer_facts"} <= set(ran["result"]["refreshed"])
    out, _ = cli(capsys, "scheduler", "run", "snapshots")  # nothing changed: nothing to do
    assert json.loads(out)["result"]["refreshed"] == []
    out, _ = cli(capsys, "snapshots", "status", "--json")
    assert "overview" in out and "customer_facts" in out
    out, _ = cli(capsys, "scheduler", "run", "identity.index")
    ran = json.loads(out)
    assert ran["status"] == "succeeded" and ran["result"]["phone"] == 2
    out, _ = cli(capsys, "identity", "matches", "--json")
    assert json.loads(out)[0]["customer_ids"] == ["c1", "c2"]
