"""The console's operations pages — shop connectors, the scheduler, identity (merge and
unmerge) and WeCom — through the production app on SQLite and PostgreSQL: every new route
refuses a request without a session, with too low a role or without the CSRF token (and
changes nothing); secrets and matching keys are never rendered; a sync started from the
page runs in the background (the request returns while the platform still holds the pull)
and is seen in the run history; merges and unmerges are recorded with the console user;
the journeys list reads the scheduler's next run."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from connectors.fakes import FakeShopify, shopify_order
from huitouke.app import connector_views, identity_views
from huitouke.app import connectors as uc
from huitouke.app.scheduler.history import list_runs
from huitouke.app.scheduler.views import journey_next_runs
from huitouke.connectors.signatures import hmac_sha256_b64
from huitouke.connectors.tables import connector_inbox, connectors
from huitouke.core.secretbox import new_key
from huitouke.identity.keys import identity_secret
from huitouke.identity.service import index_keys
from huitouke.identity.tables import identity_events, identity_keys, identity_links
from huitouke.store.tables import customers, orders
from huitouke.wecom.tables import wecom_contact_ways
from wecom.fake_wecom import FakeWeCom, serve

from .conftest import Console, csrf_of, sign_in

KEY = new_key()
TOKEN = "shpat_console_token_never_shown_5c1"
HOOK_SECRET = "whsec-console-never-shown-77a"
SECRET_KEY = "k" * 40
PHONE = "13800138000"


class GatedShopify(FakeShopify):
    """The Shopify fake, holding every answer until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__(token=TOKEN)
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()

    def answer(self, h: Any, method: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        if not self.gate.is_set():
            self.waiting.set()
            self.gate.wait(120)
        return super().answer(h, method, body)


@pytest.fixture
def shopify() -> Any:
    fake = GatedShopify()
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    for i in range(25):
        fake.put(shopify_order(i, now + timedelta(minutes=i)))
    with fake:
        yield fake


@pytest.fixture
def ops(console: Console, shopify: GatedShopify) -> Console:
    """Settings with an encryption key and a secret key; three customers (two with the same
    phone); a Shopify connector ``shop1`` pointed at the fake."""
    console.settings = console.settings.model_copy(
        update={"encryption_keys": SecretStr(KEY), "secret_key": SecretStr(SECRET_KEY)}
    )
    now = console.clock.now
    with console.store.begin() as conn:
        conn.execute(
            customers.insert(),
            [
                {"customer_id": cid, "name": None, "phone": phone, "tags": [],
                 "attributes": {}, "consent": {}, "created_at": now + timedelta(seconds=i),
                 "updated_at": now}
                for i, (cid, phone) in enumerate(
                    [("tb_ana", PHONE), ("yz_ana", "+86 138 0013 8000"), ("sh_bo", None)]
                )
            ],
        )  # fmt: skip
        index_keys(conn, secret=identity_secret(SECRET_KEY), region="CN", now=now)
    uc.add_connector(
        console.store, console.settings,
        uc.ConnectorIn(kind="shopify", name="shop1", api_base_url=shopify.url,
                       webhook_secret=HOOK_SECRET, access_token=TOKEN, page_size=10),
    )  # fmt: skip
    return console


def state(console: Console) -> dict[str, Any]:
    """Everything a refused request must leave as it was."""
    with console.store.connect() as conn:

        def count(table: Any) -> int:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

        return {
            "connectors": [
                (r.name, r.status) for r in conn.execute(select(connectors).order_by("name"))
            ],
            "orders": count(orders),
            "links": count(identity_links),
            "events": count(identity_events),
            "codes": count(wecom_contact_ways),
            "runs": len(list_runs(console.store, limit=1000)),
        }


def changing_requests() -> list[tuple[str, dict[str, str]]]:
    return [
        ("/connectors", {"kind": "shopify", "name": "shop2", "api_base_url": "http://127.0.0.1:9",
                         "webhook_secret": "x", "access_token": "y"}),
        ("/connectors/shop1/sync", {}),
        ("/connectors/shop1/pause", {}),
        ("/connectors/shop1/resume", {}),
        ("/connectors/shop1/retry", {}),
        ("/connectors/shop1/remove", {"confirm": "shop1"}),
        ("/scheduler/identity.index/run", {}),
        ("/identity/merge", {"customer_ids": "tb_ana\nyz_ana", "reason": "same phone"}),
        ("/identity/unmerge", {"customer_id": "yz_ana", "reason": "two people"}),
        ("/wecom/codes", {"code": "c1", "users": "staff1", "source": "insert",
                          "welcome_zh": "你好", "welcome_en": "Hi"}),
        ("/wecom/events/1/retry", {}),
    ]  # fmt: skip


#: the role each changing route needs
NEEDS = {
    "/connectors": "admin", "/connectors/shop1/remove": "admin",
    "/connectors/shop1/sync": "operator", "/connectors/shop1/pause": "operator",
    "/connectors/shop1/resume": "operator", "/connectors/shop1/retry": "operator",
    "/scheduler/identity.index/run": "operator", "/identity/merge": "operator",
    "/identity/unmerge": "operator", "/wecom/codes": "operator",
    "/wecom/events/1/retry": "operator",
}  # fmt: skip
PAGES = {
    "/connectors": "read", "/connectors/shop1": "read", "/connectors/new/fields?kind=youzan":
    "admin", "/connectors/shop1/runs/1": "read", "/scheduler": "read", "/scheduler/history?job=journeys": "read",
    "/identity": "read", "/identity/tb_ana": "read", "/customers/tb_ana/identity": "read",
    "/wecom": "read", "/journeys": "read", "/settings/operations": "read",
}  # fmt: skip
RANK = {"read": 0, "operator": 1, "admin": 2}
ROLE_OF = {"rita": "read", "otto": "operator", "ana": "admin"}


def _client(console: Console) -> Any:
    return console.client(
        encryption_keys=console.settings.encryption_keys, secret_key=console.settings.secret_key
    )


def test_no_page_and_no_change_without_a_session(ops: Console) -> None:
    with _client(ops) as client:
        for path in PAGES:
            r = client.get(path, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
            r = client.get(path, headers={"HX-Request": "true"}, follow_redirects=False)
            assert r.status_code == 401, path
        before = state(ops)
        for path, data in changing_requests():
            r = client.post(path, data=data, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
        assert state(ops) == before


@pytest.mark.parametrize("name", ["rita", "otto"])
def test_roles_below_what_a_route_needs_get_403_and_change_nothing(ops: Console, name: str) -> None:
    with _client(ops) as client:
        sign_in(client, name)
        token = csrf_of(client)
        for path, need in PAGES.items():
            expected = 200 if RANK[ROLE_OF[name]] >= RANK[need] else 403
            assert client.get(path).status_code == expected, path
        before = state(ops)
        for path, data in changing_requests():
            if RANK[ROLE_OF[name]] >= RANK[NEEDS[path]]:
                continue
            r = client.post(path, data={**data, "csrf_token": token})
            assert r.status_code == 403, path
        assert state(ops) == before
        # what a role may not do is not offered on its pages either
        page = client.get("/connectors/shop1").text
        assert ('id="connector-remove"' in page) is False
        assert ('id="sync-now"' in page) is (name == "otto")
        assert ('id="connector-add"' in client.get("/connectors").text) is False


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_changes_without_the_csrf_token_are_refused(ops: Console, token: str | None) -> None:
    with _client(ops) as client:
        sign_in(client, "ana")
        before = state(ops)
        for path, data in changing_requests():
            sent = dict(data) if token is None else {**data, "csrf_token": token}
            assert client.post(path, data=sent).status_code == 403, path
        assert state(ops) == before


def _wait_for_run(client: Any, path: str) -> str:
    """The run's status line once it is no longer running (the page polls the same URL)."""
    for _ in range(600):
        line = client.get(path).text
        found = re.search(r'data-status="(\w*)"', line)
        assert found, line
        if found.group(1) != "running":
            return line
        time.sleep(0.1)
    raise AssertionError(f"the run at {path} did not finish")


def test_connectors_add_sync_in_the_background_pause_retry_remove(
    ops: Console, shopify: GatedShopify
) -> None:
    with _client(ops) as client:
        sign_in(client, "ana")
        token = csrf_of(client)
        # the add form: kind-specific fields, secrets write-only
        fields = client.get("/connectors/new/fields?kind=woocommerce").text
        assert 'name="consumer_key"' in fields and 'name="access_token"' not in fields
        r = client.post("/connectors", data={
            "csrf_token": token, "kind": "shopify", "name": "shop2", "api_base_url": shopify.url,
            "webhook_secret": HOOK_SECRET, "access_token": TOKEN, "page_size": "10",
        }, follow_redirects=False)  # fmt: skip
        assert r.status_code == 303 and r.headers["location"] == "/connectors/shop2?message=added"
        # a name taken: refused, the form back without its secrets
        again = client.post("/connectors", data={
            "csrf_token": token, "kind": "shopify", "name": "shop2", "api_base_url": shopify.url,
            "webhook_secret": HOOK_SECRET, "access_token": TOKEN,
        })  # fmt: skip
        assert again.status_code == 409 and "shop2" in again.text
        missing = client.post("/connectors", data={
            "csrf_token": token, "kind": "woocommerce", "name": "woo", "api_base_url": shopify.url,
            "webhook_secret": HOOK_SECRET, "consumer_key": "ck_x",
        })  # fmt: skip
        assert missing.status_code == 422 and "consumer_secret" in missing.text
        with ops.store.connect() as conn:
            sealed = conn.execute(select(connectors.c.credentials)).scalars().all()
        assert all(TOKEN not in str(s) and HOOK_SECRET not in str(s) for s in sealed)

        # sync now: the answer comes while the platform still holds the pull
        shopify.gate.clear()
        r = client.post("/connectors/shop2/sync", data={"csrf_token": token},
                        follow_redirects=False)  # fmt: skip
        assert r.status_code == 303
        run_id = int(r.headers["location"].rsplit("run=", 1)[1])
        assert shopify.waiting.wait(60)
        page = client.get(f"/connectors/shop2?run={run_id}").text
        assert 'data-status="running"' in page and 'hx-trigger="every 1s"' in page
        # a second sync of the job while it runs is refused, not queued twice
        busy = client.post("/connectors/shop1/sync", data={"csrf_token": token})
        assert busy.status_code == 409 and "running" in busy.text
        shopify.gate.set()
        line = _wait_for_run(client, f"/connectors/shop2/runs/{run_id}")
        assert 'data-status="succeeded"' in line and "25" in line
        with ops.store.connect() as conn:
            assert (
                conn.execute(
                    select(func.count()).select_from(orders).where(orders.c.source == "shop2")
                ).scalar_one()
                == 25
            )
        page = client.get("/connectors/shop2").text
        assert f'data-run="{run_id}" data-status="succeeded"' in page
        listing = client.get("/connectors").text
        assert 'data-connector="shop2" data-status="active"' in listing
        for page_text in (page, listing, again.text, missing.text, fields):
            assert TOKEN not in page_text and HOOK_SECRET not in page_text
        runs = list_runs(ops.store, job="connectors")
        assert (
            runs[0]["trigger"] == "manual" and runs[0]["result"]["synced"]["shop2"]["pulled"] == 25
        )

        # a webhook without a buyer stays in the inbox with its reason, visible and retryable
        body = (
            b'{"id": 99, "admin_graphql_api_id": "gid://shopify/Order/99", '
            b'"updated_at": "2026-11-02T10:00:00Z", "created_at": "2026-11-02T10:00:00Z", '
            b'"total_price": "10.00", "currency": "USD", "financial_status": "paid", '
            b'"line_items": []}'
        )
        hook = client.post(
            "/v1/connectors/shop2/webhook", content=body,
            headers={"X-Shopify-Topic": "orders/updated",
                     "X-Shopify-Hmac-Sha256": hmac_sha256_b64(HOOK_SECRET, body)},
        )  # fmt: skip
        assert hook.status_code == 200, hook.text
        # acknowledged once stored, applied by the service's background applier: wait for it
        from huitouke.service.webhook_door import applier

        assert applier(client.app.state.ctx).wait_idle(60), "the background applier did not finish"  # type: ignore[attr-defined]
        page = client.get("/connectors/shop2").text
        failed = re.search(r'<tr data-inbox-id="\d+" data-status="failed">(.*?)</tr>', page, re.S)
        assert failed and "customer" in failed.group(1)
        retried = client.post("/connectors/shop2/retry", data={"csrf_token": token})
        assert retried.status_code == 200 and 'id="retried"' in retried.text
        with ops.store.connect() as conn:
            attempts = conn.execute(
                select(connector_inbox.c.attempts).where(connector_inbox.c.connector == "shop2")
            ).scalar_one()
        assert attempts == 2

        # pause refuses a sync by hand; resume allows it again
        client.post("/connectors/shop2/pause", data={"csrf_token": token})
        assert 'id="resume"' in client.get("/connectors/shop2").text
        paused = client.post("/connectors/shop2/sync", data={"csrf_token": token})
        assert paused.status_code == 409 and "paused" in paused.text
        client.post("/connectors/shop2/resume", data={"csrf_token": token})
        assert 'id="sync-now"' in client.get("/connectors/shop2").text

        # removal needs the name typed again
        wrong = client.post("/connectors/shop2/remove", data={"csrf_token": token, "confirm": "x"})
        assert wrong.status_code == 422
        assert [c["name"] for c in uc.list_connectors(ops.store)] == ["shop1", "shop2"]
        gone = client.post(
            "/connectors/shop2/remove", data={"csrf_token": token, "confirm": "shop2"},
            follow_redirects=False,
        )  # fmt: skip
        assert gone.status_code == 303
        assert [c["name"] for c in uc.list_connectors(ops.store)] == ["shop1"]


def test_connector_overview_counts_the_inbox_and_reads_the_last_sync(ops: Console) -> None:
    rows = connector_views.connector_overview(ops.store)
    assert [r["name"] for r in rows] == ["shop1"]
    assert rows[0]["inbox"] == {"pending": 0, "failed": 0, "applied": 0, "ignored": 0}
    assert rows[0]["last_sync"] is None and "set" in rows[0]["credentials"].values()
    run_id = connector_views.start_sync(ops.store, ops.settings, "shop1")
    for _ in range(600):
        run = connector_views.sync_run(ops.store, "shop1", run_id)
        if run and run["status"] != "running":
            break
        time.sleep(0.1)
    assert run is not None and run["status"] == "succeeded" and run["pulled"] == 25
    last = connector_views.connector_overview(ops.store)[0]["last_sync"]
    assert last["run_id"] == run_id and last["pulled"] == 25


def test_the_scheduler_page_lists_jobs_runs_one_now_and_filters_history(ops: Console) -> None:
    with _client(ops) as client:
        sign_in(client, "otto")
        token = csrf_of(client)
        page = client.get("/scheduler").text
        for job in ("connectors", "journeys", "outbox", "identity.index", "snapshots"):
            assert f'<tr data-job="{job}">' in page, job
        r = client.post("/scheduler/identity.index/run", data={"csrf_token": token},
                        follow_redirects=False)  # fmt: skip
        assert r.status_code == 303
        run_id = int(r.headers["location"].rsplit("started=", 1)[1])
        for _ in range(600):
            runs = list_runs(ops.store, job="identity.index")
            if runs and runs[0]["status"] != "running":
                break
            time.sleep(0.1)
        assert runs[0]["run_id"] == run_id and runs[0]["status"] == "succeeded"
        history = client.get("/scheduler?job=identity.index").text
        assert f'data-run="{run_id}" data-job="identity.index" data-status="succeeded"' in history
        assert (
            'data-status="succeeded"'
            not in client.get("/scheduler/history?job=identity.index&failed=true").text
        )
        fragment = client.get("/scheduler/history?job=identity.index").text
        assert '<tbody id="jobs-body" hx-swap-oob="true">' in fragment
        assert f'data-run="{run_id}"' in fragment and 'data-run-job="identity.index"' in fragment
        unknown = client.get("/scheduler?job=nope").text
        assert "nope" in unknown and 'data-run="' not in unknown
        assert client.post("/scheduler/nope/run", data={"csrf_token": token}).status_code == 404


def test_merge_and_unmerge_from_the_console_keep_history_and_never_show_keys(
    ops: Console,
) -> None:
    with _client(ops) as client:
        sign_in(client, "otto")
        token = csrf_of(client)
        no_reason = client.post(
            "/identity/merge", data={"csrf_token": token, "customer_ids": "tb_ana\nyz_ana"}
        )
        assert no_reason.status_code == 422 and 'id="identity-error"' in no_reason.text
        r = client.post(
            "/identity/merge",
            data={"csrf_token": token, "customer_ids": "tb_ana, yz_ana", "reason": "same phone"},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == "/identity/tb_ana?done=merge"
        page = client.get("/identity/yz_ana").text
        assert 'data-person="tb_ana"' in page
        assert re.findall(r'data-account="(\w+)"', page) == ["tb_ana", "yz_ana"]
        with ops.store.connect() as conn:
            hashes = conn.execute(select(identity_keys.c.key_hash)).scalars().all()
        assert hashes and all(h[:10] in page and h not in page for h in hashes)
        for shown in (page, client.get("/customers/tb_ana/identity").text):
            assert PHONE not in shown and "+8613800138000" not in shown
        assert "phone" in identity_views.person_view(ops.store, "tb_ana")["shared_keys"]
        # the person page's own merge form: the person, then the account
        r = client.post(
            "/identity/merge",
            data={"csrf_token": token, "customer_ids": ["tb_ana", "sh_bo"],
                  "reason": "same buyer"},
            follow_redirects=False,
        )  # fmt: skip
        assert r.status_code == 303
        assert len(identity_views.person_view(ops.store, "sh_bo")["accounts"]) == 3
        r = client.post(
            "/identity/unmerge",
            data={"csrf_token": token, "customer_id": "sh_bo", "reason": "not the same buyer"},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == "/identity/sh_bo?done=unmerge"
        again = client.post(
            "/identity/unmerge", data={"csrf_token": token, "customer_id": "sh_bo", "reason": "x"}
        )
        assert again.status_code == 409
        unknown = client.post(
            "/identity/unmerge", data={"csrf_token": token, "customer_id": "zz", "reason": "x"}
        )
        assert unknown.status_code == 404
        events = identity_views.history(ops.store)
        assert [(e["action"], e["actor"], e["reason"]) for e in events] == [
            ("unmerge", "console:otto", "not the same buyer"),
            ("merge", "console:otto", "same buyer"),
            ("merge", "console:otto", "same phone"),
        ]
        index = client.get("/identity").text
        assert index.count('data-action="merge"') == 2 and 'data-action="unmerge"' in index
        assert client.get("/identity/zz").status_code == 404
        assert (
            client.get("/identity?customer_id=sh_bo", follow_redirects=False).headers["location"]
            == "/identity/sh_bo"
        )


def test_wecom_codes_contacts_and_events_in_the_console(ops: Console) -> None:
    with serve(FakeWeCom()) as fake:
        settings = {
            "encryption_keys": ops.settings.encryption_keys, "wecom_corp_id": fake.corp_id,
            "wecom_contact_secret": SecretStr(fake.secret), "wecom_api_base_url": fake.base_url,
        }  # fmt: skip
        with ops.client(**settings) as client:
            sign_in(client, "otto")
            token = csrf_of(client)
            bad = client.post("/wecom/codes", data={
                "csrf_token": token, "code": "insert-skin", "users": "staff1",
                "source": "package_insert", "welcome_zh": "你好", "welcome_en": "Hi",
                "survey": "[not json",
            })  # fmt: skip
            assert bad.status_code == 422 and "survey" in bad.text
            r = client.post("/wecom/codes", data={
                "csrf_token": token, "code": "insert-skin", "users": "staff1\nstaff2",
                "source": "package_insert", "tags": "私域\nskincare", "welcome_zh": "感谢购买",
                "welcome_en": "Thanks", "survey": '[{"key": "skin", "label": {"zh": "肤质", '
                '"en": "Skin type"}, "choices": ["dry", "oily"]}]',
            }, follow_redirects=False)  # fmt: skip
            assert r.status_code == 303, r.text
            made = fake.calls_to("/cgi-bin/externalcontact/add_contact_way")
            assert made and made[0]["state"] == "insert-skin"
            page = client.get("/wecom").text
            card = re.search(r'<article class="code-card" data-code="insert-skin">(.*?)</article>',
                             page, re.S)  # fmt: skip
            assert card and 'src="data:image/svg+xml' in card.group(1)
            assert "私域" in card.group(1) and "package_insert" in card.group(1)
            assert fake.secret not in page
        with ops.client() as client:  # a service without WeCom still shows what was recorded
            sign_in(client, "rita")
            page = client.get("/wecom").text
            assert 'id="wecom-not-configured"' in page and 'data-code="insert-skin"' in page
            assert 'id="code-add"' not in page


def test_the_journeys_list_shows_the_schedulers_next_run(ops: Console) -> None:
    from huitouke.journeys.loader import builtin_journeys
    from huitouke.journeys.repo import save_journey
    from huitouke.settings import Settings

    journey = builtin_journeys()[0].model_copy(update={"enabled": True})
    with ops.store.begin() as conn:
        save_journey(conn, journey, enabled=True)
    at = journey.trigger.at
    zone_settings = ops.settings.model_copy(update={"timezone": "Asia/Shanghai"})
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Asia/Shanghai")
    day = datetime(2026, 6, 1, tzinfo=zone).date()
    before = datetime.combine(day, dtime(0, 1), tzinfo=zone) if at > dtime(0, 1) else None
    if before is not None:
        nxt = journey_next_runs(ops.store, zone_settings, before.astimezone(UTC))[journey.id]
        assert nxt == datetime.combine(day, at, tzinfo=zone).astimezone(UTC)
    # after its time and not run today: the job's next five-minute slot
    after = datetime.combine(day, at, tzinfo=zone) + timedelta(minutes=2, seconds=5)
    nxt = journey_next_runs(ops.store, zone_settings, after.astimezone(UTC))[journey.id]
    assert nxt is not None and nxt > after and nxt - after <= timedelta(minutes=5)
    assert nxt.minute % 5 == 0 and nxt.second == 0
    off = zone_settings.model_copy(update={"scheduler_schedules": "journeys=off"})
    assert journey_next_runs(ops.store, off, after.astimezone(UTC)) == {journey.id: None}
    assert isinstance(off, Settings)

    with ops.client() as client:
        sign_in(client, "rita")
        row = re.search(
            rf'<tr data-journey="{journey.id}" data-enabled="1">(.*?)</tr>',
            client.get("/journeys").text, re.S,
        )  # fmt: skip
        assert row
        shown = re.search(r'<td class="next-run">(.*?)</td>', row.group(1))
        assert shown and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", shown.group(1))
    with ops.client(scheduler_schedules="journeys=off") as client:
        sign_in(client, "rita")
        assert "not scheduled" in client.get("/journeys").text


def test_wecom_contacts_and_a_failed_event_retried_from_the_console(ops: Console) -> None:
    from wecom.test_private_domain import AES_KEY, _contact, _event, _post

    with serve(FakeWeCom()) as fake:
        settings = {
            "encryption_keys": ops.settings.encryption_keys, "wecom_corp_id": fake.corp_id,
            "wecom_contact_secret": SecretStr(fake.secret), "wecom_api_base_url": fake.base_url,
            "wecom_callback_token": SecretStr("cbtoken"),
            "wecom_encoding_aes_key": SecretStr(AES_KEY),
            "public_base_url": "http://127.0.0.1",
        }  # fmt: skip
        with ops.client(**settings) as client:
            sign_in(client, "otto")
            token = csrf_of(client)
            r = client.post("/wecom/codes", data={
                "csrf_token": token, "code": "order-page", "users": "staff1",
                "source": "order_page", "welcome_zh": "你好", "welcome_en": "Hi",
            }, follow_redirects=False)  # fmt: skip
            assert r.status_code == 303, r.text
            # the buyer's phone as the staff member noted it links the contact to tb_ana
            fake.contacts["wmANA"] = _contact(
                "wmANA", name="Ana Li", mobiles=[PHONE], state="order-page"
            )
            assert _post(client, _event("add_external_contact", "wmANA", state="order-page"))
            fake.fail_get_with = 84061
            assert _post(client, _event("add_external_contact", "wmX", state="order-page", at=2))
            page = client.get("/wecom").text
            contact = re.search(r'<tr data-contact="wmANA">(.*?)</tr>', page, re.S)
            assert contact and "tb_ana" in contact.group(1) and "Ana Li" in contact.group(1)
            failed = re.search(
                r'<tr data-event="(\d+)" data-status="failed">(.*?)</tr>', page, re.S
            )
            assert failed and "84061" in failed.group(2) and "/retry" in failed.group(2)
            fake.fail_get_with = None
            fake.contacts["wmX"] = _contact("wmX", name="X")
            retried = client.post(
                f"/wecom/events/{failed.group(1)}/retry", data={"csrf_token": token}
            )
            assert retried.status_code == 200 and 'id="wecom-retried"' in retried.text
            assert f'<tr data-event="{failed.group(1)}" data-status="applied">' in retried.text
            card = re.search(r'data-code="order-page">(.*?)</article>', retried.text, re.S)
            assert card and re.search(r'class="added">2<', card.group(1))
        with ops.client(**settings) as client:  # a read user sees the names masked
            sign_in(client, "rita")
            page = client.get("/wecom").text
            assert "Ana Li" not in page and 'data-contact="wmANA"' in page
            assert "/retry" not in page


def test_a_failing_sync_shows_on_the_connector_the_scheduler_and_the_settings(
    ops: Console, shopify: GatedShopify
) -> None:
    # the platform refuses the token (401): the sync fails at once
    uc.add_connector(
        ops.store, ops.settings,
        uc.ConnectorIn(kind="shopify", name="dead", api_base_url=shopify.url,
                       webhook_secret=HOOK_SECRET, access_token="shpat_revoked"),
    )  # fmt: skip
    with _client(ops) as client:
        sign_in(client, "otto")
        token = csrf_of(client)
        r = client.post("/connectors/dead/sync", data={"csrf_token": token},
                        follow_redirects=False)  # fmt: skip
        run_id = int(r.headers["location"].rsplit("run=", 1)[1])
        line = _wait_for_run(client, f"/connectors/dead/runs/{run_id}")
        assert 'data-status="failed"' in line and "connector.sync_failed" not in line
        assert "dead" in line and "bad" in line  # the error, shown in its own style
        page = client.get("/connectors/dead").text
        assert f'data-run="{run_id}" data-status="failed"' in page
        assert 'id="connector-status"' in page and "Last error" in page
        jobs = client.get("/scheduler?failed=true").text
        assert f'data-run="{run_id}" data-job="connectors" data-status="failed"' in jobs
        panel = client.get("/settings/operations").text
        assert 'data-failing="connectors"' in panel and f'data-run="{run_id}"' in panel
        assert re.search(r'<tr data-connector="dead">.*?class="bad"', panel, re.S)
        assert "shpat_revoked" not in panel + page + jobs + line


def test_the_add_form_asks_every_kind_for_its_fields_and_adds_douyin_by_shop_id(
    ops: Console,
) -> None:
    """Every kind's form fields (Douyin, Pinduoduo, WeChat 小店 and JD had only the webhook
    secret); a Douyin connector added with the shop id alone (the merchant's own app): its
    first token pair asked of the platform (token.create), never shown."""
    from connectors.douyin_fake import APP_KEY, APP_SECRET, SHOP_ID, FakeDouyin
    from huitouke.connectors.model import KINDS

    needed = {
        "douyin": {"shop", "consumer_key", "access_token", "refresh_token", "auth_code"},
        "pinduoduo": {"access_token", "consumer_key"},
        "wechat_shop": {"consumer_key", "consumer_secret"},
        "jd": {"access_token", "consumer_key"},
        "taobao": {"access_token", "consumer_key"},
        "shopify": {"shop", "access_token"},
    }
    with _client(ops) as client:
        sign_in(client, "ana")
        for kind in KINDS:
            page = client.get(f"/connectors/new/fields?kind={kind}").text
            names = set(re.findall(r'name="(\w+)"', page))
            assert "webhook_secret" in names, (kind, page)
            assert needed.get(kind, set()) <= names, (kind, names)
        with FakeDouyin() as fake:
            r = client.post(
                "/connectors",
                data={"csrf_token": csrf_of(client), "kind": "douyin", "name": "dyweb",
                      "api_base_url": fake.url, "webhook_secret": APP_SECRET,
                      "consumer_key": APP_KEY, "shop": str(SHOP_ID)},
                follow_redirects=False,
            )  # fmt: skip
            assert r.status_code == 303, r.text
            assert fake.creates[-1]["grant_type"] == "authorization_self"
            page = client.get("/connectors/dyweb").text
            assert fake.token not in page and APP_SECRET not in page
            # a code the platform refuses: the form again, the error shown, nothing stored
            r = client.post(
                "/connectors",
                data={"csrf_token": csrf_of(client), "kind": "douyin", "name": "dyweb2",
                      "api_base_url": fake.url, "webhook_secret": APP_SECRET,
                      "consumer_key": APP_KEY, "auth_code": "never-issued"},
                follow_redirects=False,
            )  # fmt: skip
            assert r.status_code == 422, r.text
            assert "authorise the shop again" in r.text and "never-issued" not in r.text
    assert [c["name"] for c in uc.list_connectors(ops.store)] == ["dyweb", "shop1"]
