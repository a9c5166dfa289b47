"""``jianglian serve``: a real waitress process on 127.0.0.1 that prints its URL and the demo logins,
answers the probes and the API, and stops cleanly on SIGTERM (releasing the embedded store)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from graph.memory import MemoryStore
from ops.neo4j_server import find_free_port
from web.auth import DEMO_PASSWORD, create_api_key, ensure_demo_users


def test_serve_prints_logins_answers_and_stops(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "store")
    store.create_node("Worker", "W1", {"name": "王师傅", "district": "亭湖区"})
    assert set(ensure_demo_users(store)) == {"admin", "city", "district", "viewer", "worker"}
    key = create_api_key(store, name="smoke", scope="read").key
    store.close()
    port = find_free_port()
    env = {**os.environ, "JIANGLIAN_STORE": "memory", "JIANGLIAN_DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-c", "from cli.main import main; main()", "serve", "--port", str(port)]
    proc = subprocess.Popen(command, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=Path(__file__).resolve().parent.parent)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(8)]
        out = "".join(lines)
        assert f"http://127.0.0.1:{port}/" in out and DEMO_PASSWORD in out and "district 亭湖区" in out
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    assert json.load(response)["status"] == "ready"
                    break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/workers", headers={"X-API-Key": key})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response)["items"][0]["name"] == "王师傅"
        assert "Content-Security-Policy" in response.headers
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "stopped" in rest
    MemoryStore(tmp_path / "store").close()  # the lock was released: the store opens again
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_demo_logins_are_checked_once_per_password_hash(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import web.auth as auth

    store = MemoryStore(tmp_path / "store")
    try:
        store.create_node("Worker", "W1", {"name": "王师傅", "district": "亭湖区"})
        ensure_demo_users(store)
        checked = tmp_path / "demo-logins-checked.json"
        calls: list[str] = []
        real = auth.check_password_hash

        def counting(stored: str, password: str) -> bool:
            calls.append(stored)
            return real(stored, password)

        monkeypatch.setattr(auth, "check_password_hash", counting)
        first = auth.demo_logins(store, checked=checked)
        assert {x["username"] for x in first} == {"admin", "city", "district", "viewer", "worker"} and len(calls) == 5
        assert auth.demo_logins(store, checked=checked) == first and len(calls) == 5  # remembered: no scrypt
        auth.set_password(store, "city", "a-new-password-2026")  # a new hash: checked again, and not printed
        again = auth.demo_logins(store, checked=checked)
        assert {x["username"] for x in again} == {"admin", "district", "viewer", "worker"} and len(calls) == 6
        assert auth.demo_logins(store, checked=checked) == again and len(calls) == 6  # "not the demo" remembered
        checked.write_text("{garbled")  # an unreadable record: every hash checked again, the same answer
        assert auth.demo_logins(store, checked=checked) == again and len(calls) == 11
    finally:
        store.close()
