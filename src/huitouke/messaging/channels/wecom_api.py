"""WeCom's customer-contact API (客户联系), the calls the private-domain playbook needs.

Every call carries an access token from ``/cgi-bin/gettoken`` (corp id + the customer-contact
secret), cached until shortly before it expires and fetched again once when WeCom answers
``42001``/``40014`` (expired or invalid token). WeCom answers HTTP 200 with ``errcode``:
``0`` is success; ``45009``/``45033``/``-1`` (rate limit, busy) are transient; any other
code is a refusal that names the code. The base URL is a setting, so tests point it at a
local fake built from WeCom's published request and response shapes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from huitouke.messaging.channels.base import PermanentSendError, TransientSendError
from huitouke.messaging.channels.http import HttpClient, RetryPolicy, post_with_retries

__all__ = ["WeComApiError", "WeComClient"]

_TOKEN_ERRORS = {40014, 42001}
_TRANSIENT = {-1, 45009, 45033}


class WeComApiError(PermanentSendError):
    """WeCom refused a call; ``errcode`` is its code (``wecom.<errcode>``)."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeCom refused: {errcode} {errmsg}", code=f"wecom.{errcode}")
        self.errcode = errcode
        self.errmsg = errmsg


class WeComClient:
    """One corp's customer-contact API. Safe to share between threads."""

    def __init__(
        self,
        base_url: str,
        corp_id: str,
        secret: str,
        *,
        http: HttpClient | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.corp_id = corp_id
        self._secret = secret
        self._http = http or HttpClient(timeout=10.0, max_connections=8)
        self._retry = retry or RetryPolicy(retries=3, base=0.2, cap=5.0)
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0

    # -- token -------------------------------------------------------------------------------

    def _fetch_token(self) -> str:
        query = urlencode({"corpid": self.corp_id, "corpsecret": self._secret})
        resp = post_with_retries(
            self._http, f"{self.base_url}/cgi-bin/gettoken?{query}", retry=self._retry,
            method="GET",
        )  # fmt: skip
        data = _answer(resp.json())
        self._token = str(data["access_token"])
        # renew five minutes early: a token fetched by another process may already be used
        self._expires = self._clock() + max(60.0, float(data.get("expires_in", 7200)) - 300.0)
        return self._token

    def token(self, *, fresh: bool = False) -> str:
        with self._lock:
            if fresh or self._token is None or self._clock() >= self._expires:
                return self._fetch_token()
            return self._token

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        for attempt in (0, 1):
            q = urlencode({"access_token": self.token(fresh=attempt == 1), **(query or {})})
            content = None if body is None else json.dumps(body, ensure_ascii=False).encode()
            headers = {"Content-Type": "application/json; charset=utf-8"} if content else {}
            resp = post_with_retries(
                self._http, f"{self.base_url}{path}?{q}", content=content, headers=headers,
                retry=self._retry, method=method,
            )  # fmt: skip
            data = resp.json()
            code = int(data.get("errcode", 0) or 0)
            if code in _TOKEN_ERRORS and attempt == 0:
                continue
            return _answer(data)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- contact ways (渠道活码) ----------------------------------------------------------------

    def add_contact_way(
        self, *, state: str, users: Sequence[str], remark: str = "", skip_verify: bool = True
    ) -> dict[str, Any]:
        """A QR contact way for ``users`` whose adds carry ``state``: ``{config_id, qr_code}``."""
        body = {
            "type": 1 if len(users) == 1 else 2,
            "scene": 2,
            "remark": remark[:30],
            "skip_verify": skip_verify,
            "state": state,
            "user": list(users),
        }
        return self._call("POST", "/cgi-bin/externalcontact/add_contact_way", body=body)

    def add_join_way(
        self, *, state: str, chat_ids: Sequence[str], remark: str = ""
    ) -> dict[str, Any]:
        """A group live code (群活码) for the after-sales groups ``chat_ids`` whose joins carry
        ``state``: ``{config_id, qr_code}`` (the QR code is read back with ``get_join_way``)."""
        made = self._call(
            "POST", "/cgi-bin/externalcontact/groupchat/add_join_way",
            body={"scene": 2, "remark": remark[:30], "auto_create_room": 0,
                  "chat_id_list": list(chat_ids), "state": state},
        )  # fmt: skip
        way = self._call(
            "POST", "/cgi-bin/externalcontact/groupchat/get_join_way",
            body={"config_id": made["config_id"]},
        )  # fmt: skip
        return {"config_id": str(made["config_id"]), "qr_code": str(way["join_way"]["qr_code"])}

    def group_chat(self, chat_id: str) -> dict[str, Any]:
        """A customer group (``groupchat/get``): ``{chat_id, name, owner, create_time,
        member_list: [{userid, type (1 staff, 2 external contact), unionid?, join_time,
        join_scene (1 invited, 2 by a link, 3 by the group's QR code), invitor?, …}], …}``."""
        data = self._call(
            "POST", "/cgi-bin/externalcontact/groupchat/get",
            body={"chat_id": chat_id, "need_name": 0},
        )  # fmt: skip
        return dict(data.get("group_chat") or {})

    # -- external contacts ----------------------------------------------------------------------

    def get_external_contact(self, external_userid: str) -> dict[str, Any]:
        """``{external_contact: {external_userid, name, unionid?, …}, follow_user: […]}``."""
        return self._call(
            "GET", "/cgi-bin/externalcontact/get", query={"external_userid": external_userid}
        )

    def send_welcome_msg(
        self, welcome_code: str, text: str, links: Sequence[dict[str, str]] = ()
    ) -> None:
        """The welcome message for an add event (its code is valid for 20 seconds), with
        link cards (a survey, an after-sales group's live code)."""
        body: dict[str, Any] = {"welcome_code": welcome_code, "text": {"content": text}}
        if links:
            body["attachments"] = [{"msgtype": "link", "link": dict(link)} for link in links]
        self._call("POST", "/cgi-bin/externalcontact/send_welcome_msg", body=body)

    # -- tags ---------------------------------------------------------------------------------

    def corp_tags(self) -> dict[str, str]:
        """Every enterprise tag: name → tag id (deleted tags left out)."""
        data = self._call("POST", "/cgi-bin/externalcontact/get_corp_tag_list", body={})
        out: dict[str, str] = {}
        for group in data.get("tag_group", []):
            for tag in group.get("tag", []):
                if not tag.get("deleted"):
                    out[str(tag["name"])] = str(tag["id"])
        return out

    def add_corp_tags(self, group_name: str, names: Sequence[str]) -> dict[str, str]:
        """Create tags in ``group_name``: name → new tag id."""
        data = self._call(
            "POST", "/cgi-bin/externalcontact/add_corp_tag",
            body={"group_name": group_name, "tag": [{"name": n} for n in names]},
        )  # fmt: skip
        return {str(t["name"]): str(t["id"]) for t in data.get("tag_group", {}).get("tag", [])}

    def mark_tag(
        self,
        userid: str,
        external_userid: str,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
    ) -> None:
        self._call(
            "POST", "/cgi-bin/externalcontact/mark_tag",
            body={"userid": userid, "external_userid": external_userid,
                  "add_tag": list(add), "remove_tag": list(remove)},
        )  # fmt: skip

    # -- messages -----------------------------------------------------------------------------

    def add_msg_template(self, sender: str, external_userids: Sequence[str], text: str) -> str:
        """A message task from ``sender`` to these contacts (the staff member confirms it in
        WeCom); the task's ``msgid``. Contacts WeCom refused are in ``fail_list``: for a
        single recipient that is a refusal."""
        data = self._call(
            "POST", "/cgi-bin/externalcontact/add_msg_template",
            body={"chat_type": "single", "external_userid": list(external_userids),
                  "sender": sender, "text": {"content": text}},
        )  # fmt: skip
        failed = data.get("fail_list") or []
        if failed and len(failed) == len(external_userids):
            raise WeComApiError(-2, f"every recipient refused: {', '.join(failed)}")
        return str(data.get("msgid", ""))

    def close(self) -> None:
        self._http.close()


def _answer(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise TransientSendError("WeCom answered something that is not a JSON object")
    code = int(data.get("errcode", 0) or 0)
    if code == 0:
        return data
    message = str(data.get("errmsg", ""))
    if code in _TRANSIENT:
        raise TransientSendError(f"WeCom busy: {code} {message}", code=f"wecom.{code}")
    raise WeComApiError(code, message)
