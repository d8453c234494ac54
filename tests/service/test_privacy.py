"""Phone numbers used as customer ids (the Youzan preset keys buyers by mobile) are masked
for read keys like any phone — in every JSON answer, whichever endpoint — and shown in full
to operator and admin keys; through ``create_app()``."""

from __future__ import annotations

from typing import Any

from huitouke.service.masking import mask_customer_ids
from huitouke.store.db import Store

from .conftest import Keys
from .test_orders_api import install_shop_program, order

PHONE = "13812345678"
MASKED = "138****5678"


def test_mask_customer_ids_masks_phone_ids_only() -> None:
    data: dict[str, Any] = {
        "customer_id": PHONE,
        "order_id": PHONE,  # not a customer field: left as it is
        "members": [{"customer_id": "+86 138 1234 5678"}, {"customer_id": "c-17"}],
        "holder_id": "+44 20 7946 0958",
        "error": {"message": f"no customer {PHONE}"},
    }
    got = mask_customer_ids(data)
    assert got["customer_id"] == MASKED and got["order_id"] == PHONE
    assert got["members"][0]["customer_id"] != "+86 138 1234 5678"
    assert got["members"][1]["customer_id"] == "c-17"
    assert "7946" in data["holder_id"] and got["holder_id"] != data["holder_id"]
    assert PHONE not in got["error"]["message"]


def test_phone_customer_ids_are_masked_for_read_keys(client: Any, keys: Keys, store: Store) -> None:
    install_shop_program(store)
    posted = client.post("/v1/orders", json=order(customer_id=PHONE), headers=keys.h("operator"))
    assert posted.status_code == 200, posted.text
    assert posted.json()["order"]["customer_id"] == PHONE  # operators see it
    for path in ("/v1/orders/o1", f"/v1/customers/{PHONE}/loyalty"):
        read = client.get(path, headers=keys.h("read"))
        assert read.status_code == 200, read.text
        assert PHONE not in read.text, path
        full = client.get(path, headers=keys.h("operator"))
        assert PHONE in full.text, path
    assert client.get("/v1/orders/o1", headers=keys.h("read")).json()["customer_id"] == MASKED
    profile = client.get(f"/v1/customers/{PHONE}", headers=keys.h("read"))
    assert profile.status_code == 200 and profile.json()["customer_id"] == MASKED
    missing = client.get("/v1/customers/13900001111", headers=keys.h("read"))
    assert missing.status_code == 404 and "13900001111" not in missing.text
    # answers with no phone in them keep their bytes (the metrics answer equals the CLI's)
    metrics = client.get("/v1/metrics?period=month", headers=keys.h("read"))
    assert metrics.status_code == 200
