"""Notification e-mail through a REAL local SMTP server (aiosmtpd, started here): delivery, retries with back-off,
permanent failures, a sender that died mid-send, two senders racing, STARTTLS with a login, and the web app's
background sender (a request never waits for the relay). No mock of SMTP anywhere."""

from __future__ import annotations

import email
import email.policy
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from html import escape as html_escape
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from graph.memory import MemoryStore
from graph.rules import TIMEZONE
from graph.store import GraphStore, NodeRow, WriteBatch
from tests.test_selection import Clock
from workflow.outbox import Outbox, PermanentFailure, SmtpChannel, SmtpSettings
from workflow.selection import Selection

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=TIMEZONE)
SEED = [
    NodeRow("Enterprise", "E1", {"name": "盐城精工机械", "district": "亭湖区"}),
    NodeRow("Worker", "W1", {"name": "王建国", "capacity": 50, "active": True, "district": "亭湖区"}),
    NodeRow("User", "tinghu", {"role": "district", "district": "亭湖区", "email": "tinghu@union.example",
                               "active": True}),
    NodeRow("User", "wang", {"role": "worker", "worker_id": "W1", "email": "wang@example.cn", "active": True}),
    *(NodeRow("Problem", f"P{i}", {"title": f"注塑件缩痕{i}", "status": "open", "enterprise_id": "E1",
                                   "district": "亭湖区"}) for i in range(1, 31)),
]


class Recorder:
    """aiosmtpd handler: keeps every message; refuses recipients at ``bounce.example`` with 550."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], email.message.EmailMessage]] = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.endswith("@bounce.example"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Recorder]]:
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller, recorder
    if controller._thread is not None:  # a test may have stopped it (the relay going away)
        controller.stop()


@pytest.fixture
def store() -> Iterator[GraphStore]:
    s = MemoryStore()
    s.apply(WriteBatch(nodes=list(SEED)))
    yield s
    s.close()


def _outbox(store: GraphStore, port: int, clock: Clock, **kwargs: Any) -> Outbox:
    settings = SmtpSettings(host="127.0.0.1", port=port, sender="noreply@jianglian.example", timeout=5)
    return Outbox(store, {"email": SmtpChannel(settings, base_url="https://jianglian.union.local")}, clock=clock,
                  **kwargs)


def test_a_volunteer_is_mailed_to_the_district_coordinator_and_recorded(
        store: GraphStore, smtp: tuple[Controller, Recorder]) -> None:
    controller, recorder = smtp
    clock = Clock(NOW)
    sel = Selection(store, clock=clock)
    sel.volunteer("P1", "W1", actor="wang", note="做过同类模具")
    [row] = store.list_nodes("OutboxMessage")
    assert (row["status"], row["to"], row["attempts"]) == ("pending", "tinghu@union.example", 0)
    clock.advance(seconds=5)
    report = _outbox(store, controller.port, clock).deliver()
    assert report.sent == [row["id"]] and not report.retried and not report.failed
    [(sender, rcpts, mail)] = recorder.messages
    assert sender == "noreply@jianglian.example" and rcpts == ["tinghu@union.example"]
    assert mail["Subject"] == "【匠联】王建国 报名对接「注塑件缩痕1」,请确认或婉拒"
    body = mail.get_content()
    assert "王建国 报名对接「注塑件缩痕1」" in body
    assert f"https://jianglian.union.local/notifications/{row['notification_id']}" in body
    sent = store.get_node("OutboxMessage", row["id"])
    assert sent["status"] == "sent" and sent["attempts"] == 1
    assert sent["sent_at"] == (NOW + timedelta(seconds=5)).isoformat(timespec="seconds")
    assert sent["receipt"] == mail["Message-ID"]  # the record names the message the relay took
    assert _outbox(store, controller.port, clock).deliver().sent == []  # sent once, not again


def test_each_mail_is_written_in_its_recipients_language(store: GraphStore,
                                                        smtp: tuple[Controller, Recorder]) -> None:
    """The coordinator reads English, the worker has chosen nothing (Chinese): one step's mail each, both real."""
    controller, recorder = smtp
    store.update_node("User", "tinghu", {"language": "en"})
    clock = Clock(NOW)
    sel = Selection(store, clock=clock)
    match = sel.volunteer("P1", "W1", actor="wang")
    sel.confirm(match["id"], actor="tinghu")
    second = sel.volunteer("P2", "W1", actor="wang")
    sel.decline_volunteer(second["id"], actor="tinghu", reason="已安排区内工匠")
    assert {(r["to"], r["lang"]) for r in store.list_nodes("OutboxMessage")} == {
        ("tinghu@union.example", "en"), ("wang@example.cn", "zh")}
    assert len(_outbox(store, controller.port, clock).deliver().sent) == 4
    mails = {(rcpts[0], mail["Subject"]): mail for _sender, rcpts, mail in recorder.messages}
    volunteered = "[Jianglian] 王建国 volunteered for “注塑件缩痕{}”: please confirm or decline"
    english = mails["tinghu@union.example", volunteered.format(1)]
    assert english["Content-Language"] == "en"
    body = english.get_content()
    assert "Open: https://jianglian.union.local/notifications/N-" in body and "automated e-mail" in body
    assert "查看" not in body and "请勿" not in body
    chinese = mails["wang@example.cn", "【匠联】您对「注塑件缩痕1」的报名已确认,可以开始对接了"]
    assert chinese["Content-Language"] == "zh-CN"
    body = chinese.get_content()
    assert "查看:https://jianglian.union.local/notifications/N-" in body and "请勿直接回复" in body
    assert "Open:" not in body and "automated" not in body
    assert ("wang@example.cn", "【匠联】您对「注塑件缩痕2」的报名未被采纳:已安排区内工匠") in mails
    assert ("tinghu@union.example", volunteered.format(2)) in mails


def test_a_user_chooses_the_language_of_their_mail_on_the_notifications_page(store: GraphStore) -> None:
    from tests.api_support import login_as, make_app

    app = make_app(store)
    client, csrf = login_as(app, store, "worker", username="wang")

    def post(**data: str) -> Any:
        return client.post("/notifications/email", data={"csrf_token": csrf["X-CSRFToken"], **data})

    page = client.get("/notifications").get_data(as_text=True)
    assert '<option value="zh" selected>' in page  # nothing chosen: Chinese
    assert post(email="wang@example.cn", language="en").status_code == 302
    assert store.get_node("User", "wang")["language"] == "en"
    assert '<option value="en" selected>' in client.get("/notifications").get_data(as_text=True)
    assert "E-mail language" in client.get("/notifications?lang=en").get_data(as_text=True)
    post(email="wang@example.cn", language="fr")  # refused: nothing changes
    assert "请选择中文或English" in client.get("/notifications").get_data(as_text=True)
    post(email="wang2@example.cn")  # a form without the field keeps the language
    assert (store.get_node("User", "wang")["email"], store.get_node("User", "wang")["language"]) == (
        "wang2@example.cn", "en")
    Selection(store, clock=Clock(NOW)).invite("P1", "W1", actor="tinghu")
    [row] = store.list_nodes("OutboxMessage", where={"to": "wang2@example.cn"})
    assert (row["lang"], row["subject"]) == ("en", "[Jianglian] You are invited to “注塑件缩痕1”")
    post(email="wang2@example.cn", language="zh")
    assert store.get_node("User", "wang")["language"] == "zh"


def test_a_relay_that_is_down_is_retried_with_back_off(store: GraphStore) -> None:
    clock = Clock(NOW)
    Selection(store, clock=clock).volunteer("P1", "W1", actor="wang")
    port = _free_port()  # nothing listens here yet
    outbox = _outbox(store, port, clock, base_delay=30)
    started = time.monotonic()
    report = outbox.deliver()
    assert time.monotonic() - started < 5  # a refused connection fails fast
    [row] = store.list_nodes("OutboxMessage")
    assert report.retried == [row["id"]] and row["status"] == "pending" and row["attempts"] == 1
    assert "ConnectionRefusedError" in row["last_error"]
    assert row["next_attempt_at"] == (NOW + timedelta(seconds=30)).isoformat(timespec="seconds")
    assert outbox.deliver().retried == []  # not due yet
    clock.advance(seconds=31)
    assert outbox.deliver().retried == [row["id"]]  # still down: the wait doubles
    row = store.get_node("OutboxMessage", row["id"])
    assert row["attempts"] == 2
    assert row["next_attempt_at"] == (NOW + timedelta(seconds=31 + 60)).isoformat(timespec="seconds")
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()  # the relay is back
    try:
        clock.advance(seconds=61)
        assert outbox.deliver().sent == [row["id"]]
    finally:
        controller.stop()
    assert len(recorder.messages) == 1 and store.get_node("OutboxMessage", row["id"])["attempts"] == 3


def test_the_last_attempt_and_a_refused_recipient_end_in_failed(store: GraphStore,
                                                                smtp: tuple[Controller, Recorder]) -> None:
    controller, recorder = smtp
    clock = Clock(NOW)
    store.update_node("User", "tinghu", {"email": "nobody@bounce.example"})
    Selection(store, clock=clock).volunteer("P1", "W1", actor="wang")
    [row] = store.list_nodes("OutboxMessage")
    report = _outbox(store, controller.port, clock).deliver()
    assert report.failed == [row["id"]]
    failed = store.get_node("OutboxMessage", row["id"])
    assert failed["status"] == "failed" and "550" in failed["last_error"] and failed["attempts"] == 1
    assert recorder.messages == []
    clock.advance(days=1)
    assert _outbox(store, controller.port, clock).deliver().failed == []  # a failed message stays failed
    # a relay that never answers: failed after max_attempts
    store.update_node("User", "tinghu", {"email": "tinghu@union.example"})
    Selection(store, clock=clock).volunteer("P2", "W1", actor="wang")
    outbox = _outbox(store, _free_port(), clock, max_attempts=2, base_delay=1)
    assert len(outbox.deliver().retried) == 1
    clock.advance(seconds=2)
    assert len(outbox.deliver().failed) == 1
    assert store.count_nodes("OutboxMessage", where={"status": "failed"}) == 2


def test_a_message_claimed_by_a_sender_that_died_is_sent_after_the_lease(
        store: GraphStore, smtp: tuple[Controller, Recorder]) -> None:
    controller, recorder = smtp
    clock = Clock(NOW)
    Selection(store, clock=clock).volunteer("P1", "W1", actor="wang")
    outbox = _outbox(store, controller.port, clock, lease=600)
    [row] = outbox.due()
    assert outbox._claim(row) is not None  # the sender claimed it... and its process died here
    assert store.get_node("OutboxMessage", row["id"])["status"] == "sending"
    clock.advance(seconds=599)
    assert outbox.deliver().sent == []  # still within the dead sender's lease
    clock.advance(seconds=2)
    assert outbox.deliver().sent == [row["id"]]  # nothing is lost
    assert len(recorder.messages) == 1 and store.get_node("OutboxMessage", row["id"])["attempts"] == 2


def test_two_senders_racing_send_each_message_once(store: GraphStore, smtp: tuple[Controller, Recorder]) -> None:
    controller, recorder = smtp
    clock = Clock(NOW)
    sel = Selection(store, clock=clock)
    for i in range(1, 31):
        sel.volunteer(f"P{i}", "W1", actor="wang")
    assert store.count_nodes("OutboxMessage") == 30
    barrier = threading.Barrier(2)
    reports: list[Any] = []

    def sender() -> None:
        outbox = _outbox(store, controller.port, clock)
        barrier.wait()
        reports.append(outbox.deliver())

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    sent = [m for r in reports for m in r.sent]
    assert sorted(sent) == sorted(r["id"] for r in store.list_nodes("OutboxMessage"))  # each exactly once
    assert len(recorder.messages) == 30
    assert sum(r.skipped for r in reports) + len(sent) >= 30
    print(f"\ntwo senders: {[len(r.sent) for r in reports]} sent, {[r.skipped for r in reports]} lost the claim")


def test_another_channel_behind_the_same_outbox(store: GraphStore) -> None:
    """The interface an SMS gateway implements: rows of channel "sms" go to the channel registered for it."""

    class Gateway:
        def __init__(self) -> None:
            self.sent: list[tuple[str, str]] = []

        def send(self, message: Any) -> str:
            if message["to"].startswith("000"):
                raise PermanentFailure("empty number")
            self.sent.append((message["to"], message["body"]))
            return f"sms-{len(self.sent)}"

    clock = Clock(NOW)
    stamp = NOW.isoformat(timespec="seconds")
    store.apply(WriteBatch(nodes=[NodeRow("OutboxMessage", f"O-{i}", {
        "channel": "sms", "to": number, "body": "您收到一个对接邀请", "status": "pending", "attempts": 0,
        "created_at": stamp, "next_attempt_at": stamp}) for i, number in enumerate(("13900000000", "000"))]))
    assert Outbox(store, {}, clock=clock).deliver().sent == []  # no gateway here: the rows wait
    gateway = Gateway()
    report = Outbox(store, {"sms": gateway}, clock=clock).deliver()
    assert report.sent == ["O-0"] and report.failed == ["O-1"]
    assert gateway.sent == [("13900000000", "您收到一个对接邀请")]
    assert store.get_node("OutboxMessage", "O-0")["receipt"] == "sms-1"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a test certificate")
def test_starttls_and_login(store: GraphStore, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    logins: list[str] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"relay-user", b"s3cret")
        if ok:
            logins.append(mechanism)
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=_free_port(), tls_context=server_tls,
                            require_starttls=True, authenticator=authenticator, auth_required=True)
    controller.start()
    try:
        clock = Clock(NOW)
        Selection(store, clock=clock).volunteer("P1", "W1", actor="wang")
        trust = ssl.create_default_context(cafile=str(cert))

        def outbox(password: str, security: str = "starttls") -> Outbox:
            settings = SmtpSettings(host="127.0.0.1", port=controller.port, sender="noreply@jianglian.example",
                                    security=security, username="relay-user",  # type: ignore[arg-type]
                                    password=password, timeout=5)
            return Outbox(store, {"email": SmtpChannel(settings, tls_context=trust)}, clock=clock)

        assert len(outbox("s3cret", security="none").deliver().failed) == 1  # never a password in clear text
        Selection(store, clock=clock).volunteer("P2", "W1", actor="wang")
        report = outbox("wrong").deliver()
        assert len(report.failed) == 1, [r.get("last_error") for r in store.list_nodes("OutboxMessage")]
        Selection(store, clock=clock).volunteer("P3", "W1", actor="wang")
        assert len(outbox("s3cret").deliver().sent) == 1
        assert logins and len(recorder.messages) == 1
    finally:
        controller.stop()


def test_the_web_app_sends_in_the_background_and_a_request_never_waits(
        store: GraphStore, smtp: tuple[Controller, Recorder]) -> None:
    from tests.api_support import login_as, make_app

    controller, recorder = smtp
    app = make_app(store, SMTP_HOST="127.0.0.1", SMTP_PORT=controller.port, SMTP_FROM="noreply@jianglian.example",
                   OUTBOX_INTERVAL=0.2, PUBLIC_URL="http://127.0.0.1:5000")
    try:
        client, headers = login_as(app, store, "district", district="亭湖区", username="tinghu")
        started = time.monotonic()
        response = client.post("/api/v1/matches", json={"problem_id": "P1", "worker_id": "W1"}, headers=headers)
        assert response.status_code == 201, response.get_data(as_text=True)
        assert time.monotonic() - started < 5
        deadline = time.monotonic() + 20
        while not recorder.messages and time.monotonic() < deadline:
            time.sleep(0.1)
        [(_sender, rcpts, mail)] = recorder.messages
        assert rcpts == ["wang@example.cn"] and mail["Subject"] == "【匠联】您收到一个对接邀请:「注塑件缩痕1」"
        assert "http://127.0.0.1:5000/notifications/N-" in mail.get_content()
        # the relay goes away: the request is as fast, the message waits in the outbox
        controller.stop()
        started = time.monotonic()
        response = client.post("/api/v1/matches", json={"problem_id": "P2", "worker_id": "W1"}, headers=headers)
        assert response.status_code == 201 and time.monotonic() - started < 5
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not store.list_nodes("OutboxMessage", where={"status": "pending",
                                                                                           "attempts": 1}):
            time.sleep(0.1)
        waiting = store.list_nodes("OutboxMessage", where={"status": "pending"})
        assert len(waiting) == 1 and waiting[0]["attempts"] == 1 and waiting[0]["last_error"]
    finally:
        app.extensions["jianglian_outbox_stop"].set()


def test_the_outbox_and_volunteer_commands(tmp_path: Path, smtp: tuple[Controller, Recorder]) -> None:
    """`jianglian user email`, `match volunteer/confirm`, `outbox send` and `outbox list` on the embedded store."""
    from click.testing import CliRunner

    from cli.main import main
    from tests.test_selection import make_dataset

    controller, recorder = smtp
    env = {"JIANGLIAN_DATA_DIR": str(tmp_path / "data"), "JIANGLIAN_STORE": "memory"}
    runner = CliRunner()
    assert runner.invoke(main, ["load", str(make_dataset(tmp_path / "ds"))], env=env).exit_code == 0
    made = runner.invoke(main, ["user", "create", "tinghu", "--role", "district", "--district", "亭湖区",
                                "--email", "tinghu@union.example", "--language", "en", "--password-stdin"],
                         input="long-password\n", env=env)
    assert made.exit_code == 0, made.output
    bad = runner.invoke(main, ["user", "email", "tinghu", "not-an-address"], env=env)
    assert bad.exit_code == 1 and "not an e-mail address" in bad.output
    volunteered = runner.invoke(main, ["match", "volunteer", "P1", "W1", "--actor", "W1"], env=env)
    assert volunteered.exit_code == 0 and "state=volunteered" in volunteered.output
    no_relay = runner.invoke(main, ["outbox", "send"], env=env)
    assert no_relay.exit_code == 1 and "JIANGLIAN_SMTP_HOST" in no_relay.output
    mail_env = {**env, "JIANGLIAN_SMTP_HOST": "127.0.0.1", "JIANGLIAN_SMTP_PORT": str(controller.port),
                "JIANGLIAN_SMTP_FROM": "noreply@jianglian.example"}
    sent = runner.invoke(main, ["outbox", "send"], env=mail_env)
    assert sent.exit_code == 0 and "sent 1, to retry 0, failed 0" in sent.output, sent.output
    assert [m[1] for m in recorder.messages] == [["tinghu@union.example"]]
    assert recorder.messages[0][2]["Subject"].startswith("[Jianglian] ")  # --language en
    listed = runner.invoke(main, ["outbox", "list", "--status", "sent"], env=env).output.splitlines()
    assert len(listed) == 1 and "\tsent\t1\ttinghu@union.example\t" in listed[0]
    mid = volunteered.output.split()[0].removeprefix("id=")
    confirmed = runner.invoke(main, ["match", "confirm", mid, "--actor", "tinghu", "--reason", "本人同意"], env=env)
    assert confirmed.exit_code == 0 and "state=accepted" in confirmed.output
    back = runner.invoke(main, ["user", "email", "tinghu", "tinghu@union.example", "--language", "zh"], env=env)
    assert back.exit_code == 0 and back.output.strip() == "tinghu: notification e-mail to tinghu@union.example in zh"
    assert runner.invoke(main, ["user", "email", "tinghu", "--language", "fr"], env=env).exit_code == 2


def test_admins_read_the_record_of_what_was_sent(store: GraphStore, smtp: tuple[Controller, Recorder]) -> None:
    from tests.api_support import login_as, make_app

    controller, _recorder = smtp
    clock = Clock(NOW)
    sel = Selection(store, clock=clock)
    sel.volunteer("P1", "W1", actor="wang")
    store.update_node("User", "tinghu", {"email": "nobody@bounce.example"})
    sel.volunteer("P2", "W1", actor="wang")
    _outbox(store, controller.port, clock).deliver()
    app = make_app(store)  # no SMTP_HOST here: the page says mail is off, and still shows the record
    admin, _ = login_as(app, store, "admin")
    page = admin.get("/outbox").get_data(as_text=True)
    assert 'data-testid="outbox-off"' in page
    assert page.count('data-testid="outbox-row" data-status="sent"') == 1
    assert page.count('data-testid="outbox-row" data-status="failed"') == 1 and "550" in page
    sent = store.list_nodes("OutboxMessage", where={"status": "sent"})[0]
    assert html_escape(sent["receipt"]) in page
    assert 'data-testid="outbox-row" data-status="sent"' not in admin.get("/outbox?status=failed").get_data(
        as_text=True)
    viewer, _ = login_as(app, store, "city")
    assert viewer.get("/outbox").status_code == 403
