"""The messaging commands end to end through the CLI (SQLite file store)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from msg_support import add_customers
from typer.testing import CliRunner

from huitouke.cli.main import app, main
from huitouke.messaging.outbox import OutboxMessage, enqueue
from huitouke.messaging.tokens import verify_unsubscribe_token
from huitouke.settings import get_settings
from huitouke.store.db import Store

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Store, Path]]:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    out = tmp_path / "outbox.jsonl"
    for k, v in {
        "HUITOUKE_DATABASE_URL": db,
        "HUITOUKE_FILE_CHANNEL_PATH": str(out),
        "HUITOUKE_SECRET_KEY": "cli-secret",
        "HUITOUKE_SMS_SIGN_NAME": "回头客",
        "HUITOUKE_QUIET_HOURS_START": "00:00",
        "HUITOUKE_QUIET_HOURS_END": "00:00",
        "HUITOUKE_WEBHOOK_URL": "",
        "HUITOUKE_SMTP_HOST": "",
        "HUITOUKE_SMS_PROVIDER": "",
    }.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    store = Store(db)
    store.migrate()
    yield store, out
    store.dispose()
    get_settings.cache_clear()


def run(*args: str) -> object:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return (
        json.loads(result.stdout) if result.stdout.strip().startswith(("{", "[")) else result.stdout
    )


def test_sms_count(env: tuple[Store, Path]) -> None:
    out = run("sms-count", "中" * 61, "-n", "100")
    assert out["text"] == "【回头客】" + "中" * 61 + " 回T退订"  # type: ignore[index]
    assert out["units"] == 71 and out["segments"] == 2 and out["cost"] == "9.0000"  # type: ignore[index]
    notice = run("sms-count", "Your order shipped", "--transactional", "--sign", "")
    assert notice["encoding"] == "GSM-7" and notice["segments"] == 1  # type: ignore[index]


def test_worker_once_outbox_and_retry(env: tuple[Store, Path]) -> None:
    store, out = env
    add_customers(
        store,
        [{"customer_id": "c1", "consent": {"file": True}}, {"customer_id": "c2", "consent": {}}],
    )
    now = datetime.now(UTC) - timedelta(minutes=1)
    with store.begin() as conn:
        enqueue(
            conn,
            [
                OutboxMessage(
                    "j",
                    cid,
                    "s",
                    "1",
                    "file",
                    {"text": f"hello {cid}"},
                    kind="transactional",
                    recipient="13812345678",
                )
                for cid in ("c1", "c2")
            ],
            now=now,
        )
    stats = run("worker", "--once", "--channel", "file")
    assert stats["sent"] == 1 and stats["reasons"] == {"consent.missing": 1}  # type: ignore[index]
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [x["customer_id"] for x in lines] == ["c1"] and lines[0]["rendered"][
        "text"
    ] == "hello c1"
    listed = run("outbox", "list", "--status", "suppressed")
    assert [r["customer_id"] for r in listed] == ["c2"]  # type: ignore[union-attr]
    assert listed[0]["recipient"] == "138****5678"  # type: ignore[index]
    full = run("outbox", "list", "--status", "suppressed", "--unmask")
    assert full[0]["recipient"] == "13812345678"  # type: ignore[index]
    assert run("outbox", "dead") == []
    retried = run("outbox", "retry", listed[0]["message_id"])  # type: ignore[index]
    assert retried == {"requeued": 1}
    stats = run("outbox", "stats")
    assert stats["j"]["statuses"] == {"sent": 1, "queued": 1}  # type: ignore[index]
    with pytest.raises(SystemExit) as bad:
        main(["outbox", "retry", "no-such-id"])
    assert bad.value.code == 3  # not found


def test_template_preview_and_unsubscribe(env: tuple[Store, Path], tmp_path: Path) -> None:
    store, _ = env
    add_customers(
        store,
        [{"customer_id": "c1", "name": "王芳", "phone": "13812345678", "consent": {"sms": True}}],
    )
    tpl = tmp_path / "t.yaml"
    tpl.write_text(
        "name: hello\nchannel: sms\nkind: marketing\nbody:\n  zh: '{{ customer.name }}您好,{{ coupon.value|money }}券已到账'\n"
        "  en: 'Hi {{ customer.name }}'\n",
        encoding="utf-8",
    )
    out = run(
        "template", "preview", str(tpl), "--customer", "c1", "--coupon-json", '{"value": "10"}'
    )
    assert out["text"] == "【回头客】王芳您好,¥10.00券已到账 回T退订"  # type: ignore[index]
    assert out["sms"]["segments"] == 1 and out["cost"] == "0.0450"  # type: ignore[index]
    assert run("template", "preview", str(tpl), "--customer", "c1", "--lang", "en")[
        "text"
    ].startswith("【回头客】Hi 王芳")  # type: ignore[index]
    with pytest.raises(SystemExit) as missing:
        main(["template", "preview", str(tpl), "--customer", "nobody"])
    assert missing.value.code == 3
    assert run("unsubscribe", "c1", "--channel", "sms")["unsubscribed"] is True  # type: ignore[index]
    link = str(run("unsubscribe-link", "c1")).strip()
    assert verify_unsubscribe_token(link.rsplit("/", 1)[1], "cli-secret").customer_id == "c1"
    assert len(str(run("inbound-token")).strip()) == 32


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{{ 1/0 }}", "template.render_error"),
        ("{{ range(200000)|list|length }}", "template.too_long"),
        ("{% for i in range(9000) %}{{ 'x' * 50 }}{% endfor %}", "template.too_long"),
        ("{{ 'x' * 10000000 }}", "template.too_long"),
        ("{{ 9 ** 9999999 }}", "template.too_long"),
        (
            "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
            "template.too_slow",
        ),
    ],
)
def test_a_runaway_template_is_a_template_error_not_a_traceback(
    env: tuple[Store, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    body: str,
    code: str,
) -> None:
    store, _ = env
    add_customers(store, [{"customer_id": "c1", "name": "王芳", "consent": {"email": True}}])
    tpl = tmp_path / "t.yaml"
    tpl.write_text(
        json.dumps({"name": "bad", "channel": "email", "kind": "marketing", "body": body}),
        encoding="utf-8",
    )
    with pytest.raises(SystemExit) as failed:
        main(["template", "preview", str(tpl), "--customer", "c1"])
    assert failed.value.code == 2  # bad input, not a crash
    err = capsys.readouterr().err
    assert code in err and "Traceback" not in err
    assert "template: bad" in err and "part: body" in err  # names template and part
