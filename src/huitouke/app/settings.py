"""Stored settings: what the console's settings page, ``GET/PUT /v1/settings/stored`` and
``huitouke settings set|clear`` do — one use case for every door.

The environment is the base; an admin stores overrides of the channel and contact-rule
settings (:data:`huitouke.store.stored_settings.EDITABLE`). A save is checked as a whole
before anything is written: the merged settings are validated by the same pydantic field
validators as the environment, the contact rules are parsed by the same parser the
dispatcher uses, and a secret is sealed with ``HUITOUKE_ENCRYPTION_KEYS`` (none configured:
``secret.no_key``, nothing stored). Every change writes an audit row in the same unit of
work; a secret's audit row says only that it was set or cleared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import SecretStr, ValidationError

from huitouke.core.secretbox import SecretBox
from huitouke.errors import ConfigError, InputError
from huitouke.messaging.rules import ContactPolicy
from huitouke.settings import Settings
from huitouke.store.audit import audit
from huitouke.store.db import Store
from huitouke.store.stored_settings import (
    EDITABLE,
    GROUPS,
    StoredValue,
    delete_stored,
    merged,
    read_stored,
    write_stored,
)
from huitouke.store.uow import run_read, run_write

__all__ = [
    "SMS_PROVIDERS",
    "SettingView",
    "clear_settings",
    "save_settings",
    "settings_view",
]

SMS_PROVIDERS = ("", "aliyun", "tencent", "file")


@dataclass(frozen=True)
class SettingView:
    """One editable setting as a page or the API shows it: a secret's value never."""

    name: str
    group: str
    secret: bool
    #: the effective value as text; always "" for a secret
    value: str
    #: a secret is set (stored or in the environment); for others: the value is not empty
    is_set: bool
    #: where the effective value comes from: stored, environment (or default)
    source: str
    updated_at: datetime | None = None
    updated_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "secret": self.secret,
            "value": None if self.secret else self.value,
            "is_set": self.is_set,
            "source": self.source,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "updated_by": self.updated_by,
        }


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _group_of(name: str) -> str:
    return next(g for g, names in GROUPS.items() if name in names)


def _not_editable(name: str) -> InputError:
    return InputError(
        f"setting {name!r} cannot be stored (editable: the channels and contact rules)",
        code="settings.not_editable",
        message_zh=f"设置 {name!r} 不能在此保存(可保存的是渠道和联系规则)",
        details={"field": name},
    )


def _bad_value(field: str, reason: str) -> InputError:
    return InputError(
        f"setting {field}: {reason}",
        code="settings.bad_value",
        message_zh=f"设置 {field}:{reason}",
        details={"field": field},
    )


def settings_view(store: Store, base: Settings) -> list[SettingView]:
    """Every editable setting, in form order, with where its value comes from."""
    stored = run_read(store, read_stored)
    out = []
    for name in EDITABLE:
        secret = Settings.is_secret(name)
        row = stored.get(name)
        env_value = _text(getattr(base, name))
        if row is not None:
            value = "" if secret else row.value
            is_set = True if secret else bool(row.value)
            source = "stored"
        else:
            value = "" if secret else env_value
            is_set = bool(env_value)
            source = "environment" if name in base.model_fields_set else "default"
        out.append(
            SettingView(
                name=name,
                group=_group_of(name),
                secret=secret,
                value=value,
                is_set=is_set,
                source=source,
                updated_at=row.updated_at if row else None,
                updated_by=row.updated_by if row else None,
            )
        )
    return out


def _validated(
    base: Settings, stored: Mapping[str, StoredValue], new: Mapping[str, Any]
) -> Settings:
    """The settings a save would give, validated as the environment is (secrets stand in
    by placeholders: any text is a valid secret)."""
    values: dict[str, Any] = {
        n: (SecretStr("stored") if r.sealed else r.value) for n, r in stored.items()
    }
    values.update(new)
    try:
        candidate = merged(base, values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ())) or "?"
        reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        raise _bad_value(field, reason) from None
    if candidate.sms_provider not in SMS_PROVIDERS:
        raise _bad_value(
            "sms_provider", f"{candidate.sms_provider!r} is not aliyun, tencent, file or empty"
        )
    try:
        ContactPolicy.from_settings(candidate)
    except InputError as exc:
        field = str(exc.details.get("setting", "contact_caps"))
        raise InputError(
            f"setting {field}: {exc.message}", code="settings.bad_value",
            message_zh=f"设置 {field}:{exc.message_zh}", details={"field": field},
        ) from None  # fmt: skip
    return candidate


def save_settings(
    store: Store,
    base: Settings,
    values: Mapping[str, str],
    *,
    actor: str,
    now: datetime,
    client: str = "-",
) -> list[str]:
    """Store ``values`` (setting name → text) over the environment; returns the names whose
    stored value changed. A non-secret equal to the environment's value is not stored (the
    stored one, if any, goes); an empty secret means "leave as it is"."""
    for name in values:
        if name not in EDITABLE:
            raise _not_editable(name)
    secrets = {n: v for n, v in values.items() if Settings.is_secret(n) and v != ""}
    plain = {n: v.strip() for n, v in values.items() if not Settings.is_secret(n)}
    box: SecretBox | None = None
    if secrets:
        try:
            box = SecretBox.from_text(base.encryption_keys.get_secret_value())
        except ConfigError as exc:
            if exc.code != "secret.no_key":
                raise
            raise InputError(
                "a secret cannot be stored: HUITOUKE_ENCRYPTION_KEYS is not set "
                "(`huitouke settings --new-encryption-key` makes a key); nothing was saved",
                code="secret.no_key",
                message_zh="无法保存凭据:未设置 HUITOUKE_ENCRYPTION_KEYS"
                "(`huitouke settings --new-encryption-key` 可生成密钥);未保存任何内容",
                details={"setting": "HUITOUKE_ENCRYPTION_KEYS", "fields": sorted(secrets)},
            ) from None

    def unit(conn: Any) -> list[str]:
        stored = read_stored(conn)
        candidate = _validated(
            base, stored, {**plain, **{n: SecretStr(v) for n, v in secrets.items()}}
        )
        changed: list[str] = []
        for name in plain:
            new_value = getattr(candidate, name)
            row = stored.get(name)
            if new_value == getattr(base, name):
                if row is not None and delete_stored(conn, name):
                    changed.append(name)
                    audit(conn, actor=actor, action="settings.clear", target=name,
                          detail={"to": "environment"}, now=now, client=client)  # fmt: skip
                continue
            text = _text(new_value)
            if row is not None and row.value == text:
                continue
            write_stored(conn, name, text, sealed=False, now=now, actor=actor)
            changed.append(name)
            old = row.value if row is not None else _text(getattr(base, name))
            audit(conn, actor=actor, action="settings.set", target=name,
                  detail={"from": old, "to": text}, now=now, client=client)  # fmt: skip
        for name, secret in secrets.items():
            assert box is not None
            write_stored(
                conn, name, box.seal(secret, context=name), sealed=True, now=now, actor=actor
            )
            changed.append(name)
            audit(conn, actor=actor, action="settings.set", target=name,
                  detail={"secret": "set"}, now=now, client=client)  # fmt: skip
        return changed

    return run_write(store, unit)


def clear_settings(
    store: Store,
    base: Settings,
    names: list[str],
    *,
    actor: str,
    now: datetime,
    client: str = "-",
) -> list[str]:
    """Remove the stored values of ``names`` (the environment's apply again); returns those
    that were stored."""
    for name in names:
        if name not in EDITABLE:
            raise _not_editable(name)

    def unit(conn: Any) -> list[str]:
        stored = read_stored(conn)
        rest = {n: r for n, r in stored.items() if n not in names}
        _validated(base, rest, {})
        gone = []
        for name in names:
            if delete_stored(conn, name):
                gone.append(name)
                detail = (
                    {"secret": "cleared"} if Settings.is_secret(name) else {"to": "environment"}
                )
                audit(conn, actor=actor, action="settings.clear", target=name, detail=detail,
                      now=now, client=client)  # fmt: skip
        return gone

    return run_write(store, unit)
