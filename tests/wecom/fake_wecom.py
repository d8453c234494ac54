"""A local stand-in for WeCom's server API, written from WeCom's published request and
response shapes (客户联系: gettoken, add_contact_way, externalcontact/get, send_welcome_msg,
get_corp_tag_list, add_corp_tag, mark_tag, add_msg_template; 客户群: groupchat/add_join_way,
get_join_way, groupchat/get). It answers HTTP 200 with an
``errcode`` as WeCom does, and records every call."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class FakeWeCom:
    corp_id: str = "ww-test-corp"
    secret: str = "contact-secret"
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)  # name → id
    join_ways: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: customer groups by chat id: ``groupchat/get``'s ``group_chat`` objects
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens_issued: int = 0
    expire_next_call: bool = False
    fail_get_with: int | None = None
    base_url: str = ""

    def join(
        self, chat_id: str, external_userid: str, *, at: int, scene: int = 3,
        unionid: str | None = None, state: str | None = None,
    ) -> None:  # fmt: skip
        """An external contact joins a customer group (as WeCom's member_list shows it)."""
        chat = self.groups.setdefault(
            chat_id,
            {"chat_id": chat_id, "name": f"售后群 {chat_id[-4:]}", "owner": "staff1",
             "create_time": at - 86400, "notice": "",
             "member_list": [{"userid": "staff1", "type": 1, "join_time": at - 86400,
                              "join_scene": 1}],
             "admin_list": [], "member_version": "v0"},
        )  # fmt: skip
        member: dict[str, Any] = {
            "userid": external_userid, "type": 2, "join_time": at, "join_scene": scene,
            "invitor": {"userid": "staff1"} if scene != 3 else None, "group_nickname": "",
        }  # fmt: skip
        if member["invitor"] is None:
            del member["invitor"]
        if unionid:
            member["unionid"] = unionid
        if state:
            member["state"] = state
        chat["member_list"].append(member)
        chat["member_version"] = f"v{len(chat['member_list'])}"

    def calls_to(self, path: str) -> list[Any]:
        return [body for p, _, body in self.calls if p == path]

    def answer(self, path: str, query: dict[str, str], body: Any) -> dict[str, Any]:
        if path == "/cgi-bin/gettoken":
            self.calls.append((path, query, body))
            if query.get("corpid") != self.corp_id or query.get("corpsecret") != self.secret:
                return {"errcode": 40001, "errmsg": "invalid credential"}
            self.tokens_issued += 1
            return {"errcode": 0, "errmsg": "ok", "access_token": f"tok{self.tokens_issued}",
                    "expires_in": 7200}  # fmt: skip
        if query.get("access_token") != f"tok{self.tokens_issued}":
            return {"errcode": 40014, "errmsg": "invalid access_token"}
        if self.expire_next_call:
            self.expire_next_call = False
            return {"errcode": 42001, "errmsg": "access_token expired"}
        # recorded once served: a call refused for its token is not a call WeCom acted on
        self.calls.append((path, query, body))
        if path == "/cgi-bin/externalcontact/add_contact_way":
            n = len(self.calls_to(path))
            return {"errcode": 0, "errmsg": "ok", "config_id": f"cfg{n:04d}",
                    "qr_code": f"https://p.qpic.cn/wwhead/fake-{body['state']}"}  # fmt: skip
        if path == "/cgi-bin/externalcontact/groupchat/add_join_way":
            n = len(self.calls_to(path))
            self.join_ways[f"join{n:04d}"] = {**body, "config_id": f"join{n:04d}",
                                              "qr_code": f"https://p.qpic.cn/wwhead/group-{n}"}  # fmt: skip
            return {"errcode": 0, "errmsg": "ok", "config_id": f"join{n:04d}"}
        if path == "/cgi-bin/externalcontact/groupchat/get_join_way":
            way = self.join_ways.get(body["config_id"])
            if way is None:
                return {"errcode": 41044, "errmsg": "invalid config_id"}
            return {"errcode": 0, "errmsg": "ok", "join_way": way}
        if path == "/cgi-bin/externalcontact/groupchat/get":
            chat = self.groups.get(body.get("chat_id", ""))
            if chat is None:
                return {"errcode": 40050, "errmsg": "chat_id not found"}
            return {"errcode": 0, "errmsg": "ok", "group_chat": chat}
        if path == "/cgi-bin/externalcontact/get":
            if self.fail_get_with is not None:
                return {"errcode": self.fail_get_with, "errmsg": "invalid external userid"}
            found = self.contacts.get(query.get("external_userid", ""))
            if found is None:
                return {"errcode": 84061, "errmsg": "not external contact"}
            return {"errcode": 0, "errmsg": "ok", **found}
        if path == "/cgi-bin/externalcontact/send_welcome_msg":
            return {"errcode": 0, "errmsg": "ok"}
        if path == "/cgi-bin/externalcontact/get_corp_tag_list":
            return {"errcode": 0, "errmsg": "ok", "tag_group": [
                {"group_id": "g1", "group_name": "huitouke", "tag": [
                    {"id": i, "name": n, "create_time": 0, "order": 0, "deleted": False}
                    for n, i in self.tags.items()]}]}  # fmt: skip
        if path == "/cgi-bin/externalcontact/add_corp_tag":
            made = []
            for t in body["tag"]:
                self.tags[t["name"]] = f"et{len(self.tags) + 1:03d}"
                made.append({"id": self.tags[t["name"]], "name": t["name"], "create_time": 0,
                             "order": 0})  # fmt: skip
            return {"errcode": 0, "errmsg": "ok",
                    "tag_group": {"group_id": "g1", "group_name": body["group_name"],
                                  "create_time": 0, "order": 0, "tag": made}}  # fmt: skip
        if path == "/cgi-bin/externalcontact/mark_tag":
            return {"errcode": 0, "errmsg": "ok"}
        if path == "/cgi-bin/externalcontact/add_msg_template":
            unknown = [e for e in body["external_userid"] if e not in self.contacts]
            return {"errcode": 0, "errmsg": "ok", "fail_list": unknown,
                    "msgid": f"msg{len(self.calls_to(path)):04d}"}  # fmt: skip
        return {"errcode": 404, "errmsg": f"no such api {path}"}


@contextmanager
def serve(fake: FakeWeCom) -> Iterator[FakeWeCom]:
    class Handler(BaseHTTPRequestHandler):
        def _go(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            data = json.dumps(fake.answer(parts.path, query, body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _go
        do_POST = _go

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
