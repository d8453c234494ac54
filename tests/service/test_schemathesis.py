"""Property-based fuzzing of the whole API from its OpenAPI schema (schemathesis, in
process against the ASGI app): for valid and for invalid inputs of every operation, no
request may cause a server error, and every response must match the documented status
codes, content types and schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from huitouke.loyalty.program import load_program
from huitouke.loyalty.programs_repo import save_program
from huitouke.service import create_app
from huitouke.service.apikeys import create_api_key
from huitouke.settings import Settings
from huitouke.store.db import Store

PROGRAM = (
    Path(__file__).resolve().parents[2] / "src" / "huitouke" / "loyalty" / "examples" / "shop.yaml"
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: Routes another context mounts on the app (messaging callbacks answer providers in their
#: own formats): fuzzed for server errors only.
FOREIGN = ("/v1/inbound/", "/v1/receipts/", "/u/")
#: Examples per operation and mode: bounded so the whole run takes about a minute per backend.
EXAMPLES = {GenerationMode.POSITIVE: 15, GenerationMode.NEGATIVE: 8}


@pytest.mark.slow
def test_fuzz_every_operation(store: Store, store_url: str) -> None:
    with store.begin() as conn:
        key = create_api_key(conn, scope="admin", name="fuzz", now=datetime.now(UTC))[1]
        doc = yaml.safe_load(PROGRAM.read_text(encoding="utf-8"))
        save_program(conn, load_program({**doc, "id": "default"}), now=datetime.now(UTC))
    app = create_app(Settings(database_url=store_url, lang="en"), store)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {key}"}
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        checks = [not_a_server_error] if operation.path.startswith(FOREIGN) else CHECKS
        for mode, n in EXAMPLES.items():

            @settings(
                max_examples=n,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],  # report, do not shrink
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                case.call_and_validate(headers=headers, checks=checks)  # noqa: B023

            try:
                run()
            except Unsatisfiable:
                continue  # no parameters to make invalid (e.g. GET /health)
            except (Exception, BaseExceptionGroup) as exc:  # each operation's first failure
                failures.append(
                    f"{operation.method.upper()} {operation.path} [{mode.value}]: {exc}"
                )
    assert operations >= 30
    assert not failures, "\n\n".join(failures)
