"""The production app's route table: every router mounted from one list, every route
documented in docs/api.md and every documented route served, and every address the product
prints (tracked links, package-insert QR codes, unsubscribe links) answered by a route —
in-process through ``create_app()`` and by a real ``huitouke serve``."""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from huitouke.journeys.offline import insert_card_url
from huitouke.measurement.codes import create_codes
from huitouke.measurement.links import tracked_url
from huitouke.messaging.tokens import make_unsubscribe_token, unsubscribe_url
from huitouke.service import create_app
from huitouke.service.app import ROUTER_MODULES, route_table
from huitouke.settings import Settings
from huitouke.store.db import Store

from .conftest import make_keys
from .live import LiveServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parents[2]
SECRET = "routes-test-secret"
NOW = datetime(2026, 5, 6, 4, 0, tzinfo=UTC)

_DOC_ROUTE = re.compile(r"`(GET|POST|PUT|DELETE|PATCH)\s+(/[^`\s?]*)")


def _shape(path: str) -> str:
    """A path with its parameters unnamed: ``/v1/customers/{id}`` → ``/v1/customers/{}``."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def documented_routes() -> set[tuple[str, str]]:
    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    return {(m, _shape(p)) for m, p in _DOC_ROUTE.findall(text)}


def served_routes(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'routes.db'}"))
    return {(m, _shape(p)) for m, p in route_table(app)}


def test_every_route_is_documented_and_every_documented_route_exists(tmp_path: Path) -> None:
    served, documented = served_routes(tmp_path), documented_routes()
    assert served - documented == set(), "routes missing from docs/api.md"
    assert documented - served == set(), "docs/api.md names routes the app does not serve"


def test_routers_of_every_context_are_mounted(tmp_path: Path) -> None:
    served = served_routes(tmp_path)
    for route in [
        ("GET", "/r/{}"),
        ("GET", "/claim/{}"),
        ("POST", "/v1/insert-codes/{}/claim"),
        ("GET", "/v1/journeys"),
        ("POST", "/v1/journeys/run"),
        ("GET", "/u/{}"),
        ("POST", "/v1/inbound/sms"),
    ]:
        assert route in served


def test_every_router_module_is_in_the_one_list() -> None:
    """A module that builds a router is mounted from ``ROUTER_MODULES``, and a router that
    needs the service (its keys, context, units of work) lives under ``service/routers``:
    no context carries a piece of the service door (the layers contract has no exception).
    The console is part of the service door (``service/console``)."""
    src = REPO / "src"
    defining = {
        ".".join(f.relative_to(src).with_suffix("").parts)
        for f in (src / "huitouke").rglob("*.py")
        if "APIRouter(" in f.read_text(encoding="utf-8")
    }
    assert defining == set(ROUTER_MODULES)
    for name in ROUTER_MODULES:
        if name.startswith("huitouke.service."):
            continue  # the door itself: service/routers, the console
        text = (src / Path(*name.split("."))).with_suffix(".py").read_text(encoding="utf-8")
        assert "huitouke.service" not in text, name
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert ".api -> huitouke." not in pyproject


def printed_urls(store: Store, settings: Settings) -> dict[str, str]:
    """One address of each kind the product prints, built by the product's own functions."""
    with store.begin() as conn:
        (code,) = create_codes(conn, "spring", 1, NOW)
    base = settings.public_base_url
    return {
        "tracked_link": tracked_url(
            base,
            settings.secret_key.get_secret_value(),
            journey_id="second_order",
            customer_id="c1",
            step_id="s0",
            occurrence="2026-05-06",
            url="https://shop.example.com/p/1",
        ),
        "insert_card": insert_card_url(base, code),
        "unsubscribe": unsubscribe_url(
            base,
            make_unsubscribe_token(
                "c1", "email", settings.secret_key.get_secret_value(), message_id="m1"
            ),
        ),
    }


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _check_printed(get: object, urls: dict[str, str]) -> None:
    assert callable(get)
    link = get(_path(urls["tracked_link"]))
    assert link.status_code == 307, link.text
    assert link.headers["location"] == "https://shop.example.com/p/1"
    card = get(_path(urls["insert_card"]))
    assert card.status_code == 200 and urls["insert_card"].rsplit("/", 1)[1] in card.text
    page = get(_path(urls["unsubscribe"]))
    assert page.status_code == 200 and "<form" in page.text


def test_every_printed_url_resolves_in_create_app(store_url: str, store: Store) -> None:
    settings = Settings(
        database_url=store_url,
        lang="en",
        secret_key=SECRET,
        public_base_url="https://shop.example.com/huitouke",
    )
    urls = printed_urls(store, settings)
    for url in urls.values():
        assert url.startswith("https://shop.example.com/huitouke/")
    app = create_app(settings, store)
    with TestClient(app, raise_server_exceptions=False) as c:

        def get(path: str) -> httpx.Response:
            # the service is mounted at the base URL's path behind a proxy
            return c.get(path.removeprefix("/huitouke"), follow_redirects=False)

        _check_printed(get, urls)


@pytest.mark.slow
def test_a_real_serve_answers_links_and_journeys(
    store_url: str, store: Store, tmp_path: Path
) -> None:
    keys = make_keys(store)
    server = LiveServer(
        store_url, tmp_path / "server.log", env={"HUITOUKE_SECRET_KEY": SECRET}
    ).start()
    try:
        settings = Settings(
            database_url=store_url, secret_key=SECRET, public_base_url=server.base_url
        )
        urls = printed_urls(store, settings)
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            _check_printed(lambda p: http.get(p, follow_redirects=False), urls)
            listed = http.get("/v1/journeys", headers=keys.h("read"))
            assert listed.status_code == 200
            assert {"second_order", "birthday"} <= {j["id"] for j in listed.json()}
            claim = http.post(
                f"/v1/insert-codes/{urls['insert_card'].rsplit('/', 1)[1]}/claim",
                json={"customer_id": "c1"},
                headers=keys.h("operator"),
            )
            assert claim.status_code == 200 and claim.json()["claimed_by"] == "c1"
    finally:
        server.stop()
