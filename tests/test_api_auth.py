"""Authentication and authorisation of every API route: API keys (hashed, scoped, revocable, never
logged), roles and district scoping for session users, CSRF on session writes, rate limiting."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from click.testing import CliRunner

from graph.memory import MemoryStore
from graph.store import GraphStore
from web.auth import create_api_key, revoke_api_key

pytest.register_assert_rewrite("tests.api_support")

from tests.api_support import assert_problem, login_as, make_app  # noqa: E402

pytest_plugins = ["tests.api_support"]

_READ_OK_POSTS = {("POST", "/api/v1/recommendations")}


def _operations(app: Any) -> list[tuple[str, str]]:
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    return [(method.upper(), path) for path, ops in spec["paths"].items() for method in ops
            if path.startswith("/api/v1/")]


def _fill(path: str, ids: dict[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "node_id":
            resource = path.split("/")[3]
            return ids[resource]
        return ids[name]

    return re.sub(r"\{(\w+)\}", sub, path)


@pytest.fixture
def ids(api_app: Any, keys: dict, store: GraphStore) -> dict[str, str]:
    """Real ids for every path parameter (a live invitation for the match routes)."""
    problem = next(p for p in store.iter_nodes("Problem") if p.get("status") == "open")
    worker = next(w for w in store.iter_nodes("Worker") if w.get("active", True) is not False
                  and w.get("employer_id") != problem.get("enterprise_id"))
    match = api_app.test_client().post("/api/v1/matches", headers=keys["write"], json={
        "problem_id": problem["id"], "worker_id": worker["id"], "override_capacity": True})
    assert match.status_code == 201, match.get_json()
    return {"workers": worker["id"], "problems": problem["id"], "enterprises": problem["enterprise_id"],
            "skills": store.list_nodes("Skill", limit=1)[0]["id"],
            "industry-chains": store.list_nodes("IndustryChain", limit=1)[0]["id"],
            "problem_id": problem["id"], "worker_id": worker["id"], "match_id": match.get_json()["id"]}


def test_every_route_needs_credentials(api_app: Any, ids: dict[str, str]) -> None:
    client = api_app.test_client()
    operations = _operations(api_app)
    assert len(operations) >= 30
    for method, path in operations:
        response = client.open(_fill(path, ids), method=method, json={})
        body = assert_problem(response, 401, slug="unauthenticated")
        assert "X-API-Key" in response.headers["WWW-Authenticate"] or body


@pytest.mark.parametrize("key", ["jl_000000000000_" + "x" * 43, "not-a-key", "", "jl_zz_zz"])
def test_bad_keys_are_401(api_app: Any, key: str) -> None:
    assert_problem(api_app.test_client().get("/api/v1/workers", headers={"X-API-Key": key}), 401)


def test_wrong_secret_of_a_real_key_is_401(api_app: Any, store: GraphStore) -> None:
    created = create_api_key(store, name="x", scope="write")
    forged = created.key[:-4] + ("aaaa" if not created.key.endswith("aaaa") else "bbbb")
    assert_problem(api_app.test_client().get("/api/v1/workers", headers={"X-API-Key": forged}), 401)


def test_read_scope_cannot_write_anywhere(api_app: Any, keys: dict, ids: dict[str, str]) -> None:
    client = api_app.test_client()
    writes = [(m, p) for m, p in _operations(api_app) if m != "GET" and (m, p) not in _READ_OK_POSTS]
    assert len(writes) >= 15
    for method, path in writes:
        response = client.open(_fill(path, ids), method=method, json={}, headers=keys["read"])
        assert_problem(response, 403, slug="forbidden")


def test_read_scope_reads_everything_but_the_audit_log(api_app: Any, keys: dict, ids: dict[str, str]) -> None:
    client = api_app.test_client()
    for method, path in _operations(api_app):
        if method != "GET":
            continue
        response = client.get(_fill(path, ids), headers=keys["read"])
        if path == "/api/v1/audit":
            assert_problem(response, 403)
        else:
            assert response.status_code == 200, (path, response.get_json())


def test_revoked_key_stops_working_at_once(api_app: Any, store: GraphStore) -> None:
    created = create_api_key(store, name="temp", scope="read")
    client = api_app.test_client()
    assert client.get("/api/v1/workers", headers={"X-API-Key": created.key}).status_code == 200
    revoke_api_key(store, created.id)
    assert_problem(client.get("/api/v1/workers", headers={"X-API-Key": created.key}), 401)


def test_api_keys_are_stored_hashed_and_never_logged(store: GraphStore, tmp_path: Any,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    disk = MemoryStore(tmp_path / "store")
    app = make_app(disk)
    created = create_api_key(disk, name="平台", scope="write")
    client = app.test_client()
    assert client.get("/api/v1/workers", headers={"X-API-Key": created.key}).status_code == 200
    client.get("/api/v1/workers", headers={"X-API-Key": created.key[:-1] + "Z"})
    client.post("/api/v1/workers", headers={"X-API-Key": created.key}, json={"name": "x"})
    revoke_api_key(disk, created.id)
    client.get("/api/v1/workers", headers={"X-API-Key": created.key})
    secret = created.key.split("_", 2)[2]
    everything = json.dumps([n for label in ("ApiKey", "AuditEvent", "Worker", "User")
                             for n in disk.iter_nodes(label)], ensure_ascii=False)
    assert created.key not in everything and secret not in everything
    on_disk = b"".join(path.read_bytes() for path in (tmp_path / "store").glob("jianglian.sqlite*")  # db and WAL
                       ).decode("utf-8", "replace")
    assert secret not in on_disk and created.id in on_disk
    node = disk.get_node("ApiKey", created.id)
    assert node is not None and len(node["key_hash"]) == 64 and node["scope"] == "write"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert secret not in logged and created.key not in logged
    assert created.id in logged  # key ids are logged, secrets never
    disk.close()


# -- roles ----------------------------------------------------------------------------------------
def _worker_in(store: GraphStore, district: str) -> dict[str, Any]:
    return next(w for w in store.iter_nodes("Worker") if w.get("district") == district)


def test_viewer_reads_but_cannot_write(api_app: Any, store: GraphStore, ids: dict[str, str]) -> None:
    client, csrf = login_as(api_app, store, "viewer")
    assert client.get("/api/v1/workers").status_code == 200
    response = client.patch(f"/api/v1/workers/{ids['workers']}", json={"team": "x"}, headers=csrf)
    assert_problem(response, 403, slug="forbidden")
    assert_problem(client.post("/api/v1/matches", json={"problem_id": ids["problem_id"],
                                                        "worker_id": ids["worker_id"]}, headers=csrf), 403)
    assert_problem(client.get("/api/v1/audit"), 403)
    assert "contact" not in client.get(f"/api/v1/workers/{ids['workers']}").get_json()


def test_district_coordinator_edits_only_their_district(api_app: Any, store: GraphStore) -> None:
    client, csrf = login_as(api_app, store, "district", district="亭湖区")
    mine, theirs = _worker_in(store, "亭湖区"), _worker_in(store, "盐都区")
    assert client.patch(f"/api/v1/workers/{mine['id']}", json={"team": "亭湖队"}, headers=csrf).status_code == 200
    assert "contact" in client.get(f"/api/v1/workers/{mine['id']}").get_json() or not mine.get("contact")
    assert "contact" not in client.get(f"/api/v1/workers/{theirs['id']}").get_json()
    assert_problem(client.patch(f"/api/v1/workers/{theirs['id']}", json={"team": "x"}, headers=csrf), 403)
    # moving one of mine to another district is leaving my remit too
    assert_problem(client.patch(f"/api/v1/workers/{mine['id']}", json={"district": "盐都区"}, headers=csrf), 403)
    own = client.post("/api/v1/problems", json={"title": "亭湖企业的难题"}, headers=csrf)
    assert own.status_code == 201 and own.get_json()["district"] == "亭湖区"
    assert_problem(client.post("/api/v1/problems", json={"title": "x", "district": "盐都区"}, headers=csrf), 403)
    other_problem = next(p for p in store.iter_nodes("Problem") if p.get("district") == "盐都区"
                         and p.get("status") == "open")
    assert_problem(client.patch(f"/api/v1/problems/{other_problem['id']}", json={"title": "x"}, headers=csrf),
                   403)
    invite = client.post("/api/v1/matches", json={"problem_id": other_problem["id"], "worker_id": mine["id"]},
                         headers=csrf)
    assert_problem(invite, 403)
    assert_problem(client.post("/api/v1/skills", json={"name": "新技能X"}, headers=csrf), 403)


def test_city_coordinator_edits_everywhere_admin_reads_audit(api_app: Any, store: GraphStore) -> None:
    client, csrf = login_as(api_app, store, "city")
    theirs = _worker_in(store, "盐都区")
    assert client.patch(f"/api/v1/workers/{theirs['id']}", json={"team": "y"}, headers=csrf).status_code == 200
    assert client.post("/api/v1/skills", json={"name": "新技能Y"}, headers=csrf).status_code == 201
    assert_problem(client.get("/api/v1/audit"), 403)
    admin, _ = login_as(api_app, store, "admin")
    audit = admin.get("/api/v1/audit?per_page=5")
    assert audit.status_code == 200 and audit.get_json()["total"] >= 0


def test_worker_answers_only_their_own_invitations(api_app: Any, store: GraphStore, keys: dict) -> None:
    problem = next(p for p in store.iter_nodes("Problem") if p.get("status") == "open")
    workers = [w for w in store.iter_nodes("Worker") if w.get("active", True) is not False
               and w.get("employer_id") != problem.get("enterprise_id")][:2]
    api = api_app.test_client()
    matches = [api.post("/api/v1/matches", headers=keys["write"], json={
        "problem_id": problem["id"], "worker_id": w["id"], "override_capacity": True}).get_json() for w in workers]
    client, csrf = login_as(api_app, store, "worker", worker_id=workers[0]["id"])
    assert_problem(client.post(f"/api/v1/matches/{matches[1]['id']}/accept", headers=csrf), 403)
    assert_problem(client.get(f"/api/v1/matches/{matches[1]['id']}"), 403)
    mine = client.get("/api/v1/matches").get_json()
    assert [m["id"] for m in mine["items"]] == [matches[0]["id"]]
    accepted = client.post(f"/api/v1/matches/{matches[0]['id']}/accept", headers=csrf)
    assert accepted.status_code == 200 and accepted.get_json()["state"] == "accepted"
    assert accepted.get_json()["history"][-1]["actor"] == f"worker-{workers[0]['id']}"
    assert_problem(client.post(f"/api/v1/matches/{matches[0]['id']}/complete", headers=csrf, json={
        "solved": True, "hours": 2, "trainees": 1, "satisfaction": 5}), 403)
    assert_problem(client.get(f"/api/v1/workers/{workers[1]['id']}/recommended-problems"), 403)
    assert_problem(client.get(f"/api/v1/problems/{problem['id']}/recommendations"), 403)


def test_session_writes_need_the_csrf_header(api_app: Any, store: GraphStore) -> None:
    client, csrf = login_as(api_app, store, "city")
    worker = _worker_in(store, "亭湖区")
    assert_problem(client.patch(f"/api/v1/workers/{worker['id']}", json={"team": "z"}), 403, slug="csrf")
    assert_problem(client.patch(f"/api/v1/workers/{worker['id']}", json={"team": "z"},
                                headers={"X-CSRFToken": "forged"}), 403, slug="csrf")
    assert client.patch(f"/api/v1/workers/{worker['id']}", json={"team": "z"}, headers=csrf).status_code == 200
    assert client.get("/api/v1/workers").status_code == 200  # reads need no token


def test_api_key_wins_over_the_session_and_needs_no_csrf(api_app: Any, store: GraphStore, keys: dict) -> None:
    client, _ = login_as(api_app, store, "viewer")
    worker = _worker_in(store, "亭湖区")
    response = client.patch(f"/api/v1/workers/{worker['id']}", json={"team": "k"}, headers=keys["write"])
    assert response.status_code == 200


# -- rate limiting ----------------------------------------------------------------------------------
def test_rate_limit_is_per_key_and_answers_429_problem(store: GraphStore) -> None:
    app = make_app(store, API_RATE_LIMIT="3 per minute")
    a = create_api_key(store, name="a", scope="read")
    b = create_api_key(store, name="b", scope="read")
    client = app.test_client()
    for _ in range(3):
        assert client.get("/api/v1/workers", headers={"X-API-Key": a.key}).status_code == 200
    limited = client.get("/api/v1/workers", headers={"X-API-Key": a.key})
    assert_problem(limited, 429, slug="rate-limited")
    assert int(limited.headers["Retry-After"]) > 0
    assert client.get("/api/v1/skills", headers={"X-API-Key": b.key}).status_code == 200
    assert client.get("/healthz").status_code == 200  # probes are not limited


# -- command line -----------------------------------------------------------------------------------
def test_cli_apikey_and_user_commands(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import main

    monkeypatch.setenv("JIANGLIAN_STORE", "memory")
    monkeypatch.setenv("JIANGLIAN_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    created = runner.invoke(main, ["apikey", "create", "--name", "江苏工会网", "--scope", "write"])
    assert created.exit_code == 0, created.output
    key = re.search(r"key:\s+(jl_\S+)", created.output).group(1)  # type: ignore[union-attr]
    key_id = key.split("_")[1]
    listed = runner.invoke(main, ["apikey", "list"])
    assert key_id in listed.output and "write" in listed.output and key not in listed.output
    user = runner.invoke(main, ["user", "create", "tinghu", "--role", "district", "--district", "亭湖区",
                                "--password-stdin"], input="long enough pw\n")
    assert user.exit_code == 0, user.output
    assert "tinghu\tdistrict\t亭湖区" in runner.invoke(main, ["user", "list"]).output
    bad = runner.invoke(main, ["user", "create", "x1", "--role", "district", "--password-stdin"], input="long pw 1\n")
    assert bad.exit_code != 0 and "district" in bad.output
    assert runner.invoke(main, ["apikey", "revoke", key_id]).exit_code == 0
    store = MemoryStore(tmp_path / "store")
    app = make_app(store)
    assert_problem(app.test_client().get("/api/v1/workers", headers={"X-API-Key": key}), 401)
    store.close()
    on_disk = b"".join(path.read_bytes() for path in (tmp_path / "store").glob("jianglian.sqlite*"))
    assert key.split("_", 2)[2].encode() not in on_disk
