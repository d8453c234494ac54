"""Credentials at rest: AES-256-GCM under the configured keys, bound to their context."""

from __future__ import annotations

import base64

import pytest
from typer.testing import CliRunner

from huitouke.core.secretbox import SecretBox, new_key
from huitouke.errors import ConfigError, InputError


def test_seal_and_open_round_trip_with_a_random_nonce() -> None:
    box = SecretBox.from_text(new_key())
    one = box.seal("shpat_123", context="connector:a:token")
    two = box.seal("shpat_123", context="connector:a:token")
    assert one != two  # a fresh nonce per value
    assert "shpat_123" not in one
    assert box.open(one, context="connector:a:token") == "shpat_123"
    assert box.open(two, context="connector:a:token") == "shpat_123"


def test_a_value_does_not_open_in_another_context_or_when_altered() -> None:
    box = SecretBox.from_text(new_key())
    sealed = box.seal("pw", context="channel:smtp:password")
    with pytest.raises(InputError) as err:
        box.open(sealed, context="channel:smtp:api_key")
    assert err.value.code == "secret.unreadable"
    head, _, tail = sealed.rpartition(".")
    flipped = tail[:-2] + ("A" if tail[-2] != "A" else "B") + tail[-1]
    with pytest.raises(InputError):
        box.open(f"{head}.{flipped}", context="channel:smtp:password")
    with pytest.raises(InputError):
        box.open("not a sealed value", context="channel:smtp:password")


def test_rotation_new_key_first_old_values_still_open() -> None:
    old, new = new_key(), new_key()
    sealed_old = SecretBox.from_text(old).seal("v", context="c")
    rotated = SecretBox.from_text(f"{new},{old}")
    assert rotated.open(sealed_old, context="c") == "v"
    assert rotated.needs_reseal(sealed_old)
    assert not rotated.needs_reseal(rotated.seal("v", context="c"))
    with pytest.raises(InputError):
        SecretBox.from_text(new).open(sealed_old, context="c")


def test_bad_or_missing_keys_are_named() -> None:
    with pytest.raises(ConfigError) as err:
        SecretBox.from_text(" , ")
    assert err.value.code == "secret.no_key"
    short = base64.urlsafe_b64encode(b"x" * 16).decode()
    with pytest.raises(ConfigError) as err:
        SecretBox.from_text(f"{new_key()},{short}")
    assert err.value.code == "secret.bad_key"
    assert err.value.details["position"] == 2
    assert "key 2" in err.value.message


def test_cli_prints_a_usable_key() -> None:
    from huitouke.cli.main import app

    result = CliRunner().invoke(app, ["settings", "--new-encryption-key"])
    assert result.exit_code == 0, result.output
    key = result.output.strip()
    box = SecretBox.from_text(key)
    assert box.open(box.seal("x", context="c"), context="c") == "x"
