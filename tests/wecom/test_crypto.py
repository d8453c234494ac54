"""WeCom's callback encryption, checked against the example WeCom publishes with its
WXBizMsgCrypt sample code (token QDG6eK, corp id wx5823bf96d3bd56c7)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from huitouke.wecom.crypto import WeComCrypto, WeComCryptoError, signature

OFFICIAL = WeComCrypto(
    token="QDG6eK",
    encoding_aes_key="jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    receive_id="wx5823bf96d3bd56c7",
)
ECHO = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
MESSAGE = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdC"
    "Upj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4X"
    "gpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+K"
    "qCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XX"
    "ZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHB"
    "ZZIs2pDBS8R07+qN+E7Q=="
)


def test_the_published_url_verification_example() -> None:
    assert signature("QDG6eK", "1409659589", "263014780", ECHO) == (
        "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
    )
    echo = OFFICIAL.open(
        "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780", ECHO
    )
    assert echo == "1616140317555161061"


def test_the_published_message_example() -> None:
    plain = OFFICIAL.open(
        "477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149", MESSAGE
    )
    root = ET.fromstring(plain)
    assert root.findtext("ToUserName") == "wx5823bf96d3bd56c7"
    assert root.findtext("MsgType") == "text"
    assert root.findtext("AgentID") == "218"


def test_round_trip_and_every_refusal() -> None:
    sealed = OFFICIAL.encrypt("<xml><Event>change_external_contact</Event></xml>中文")
    assert OFFICIAL.decrypt(sealed).endswith("中文")
    sig = signature(OFFICIAL.token, "1", "2", sealed)
    with pytest.raises(WeComCryptoError) as err:
        OFFICIAL.open("0" * 40, "1", "2", sealed)
    assert err.value.reason == "signature"
    other = WeComCrypto(OFFICIAL.token, OFFICIAL.encoding_aes_key, "ww-another-corp")
    with pytest.raises(WeComCryptoError) as err:
        other.open(sig, "1", "2", sealed)
    assert err.value.reason == "receive_id"
    tampered = sealed[:-8] + ("AAAAAAA=" if not sealed.endswith("AAAAAAA=") else "BBBBBBB=")
    with pytest.raises(WeComCryptoError):
        OFFICIAL.decrypt(tampered)
    with pytest.raises(WeComCryptoError):
        OFFICIAL.decrypt("not base64!")
    with pytest.raises(WeComCryptoError):
        WeComCrypto("t", "short", "x").decrypt(sealed)
