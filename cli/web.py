"""Web commands: ``serve`` (gunicorn workers, or waitress for one), ``apikey create|revoke|list``,
``user create|list|passwd|disable|enable``.

Whether these commands can run while the site is up depends on the store: the Neo4j store is shared by any
number of processes; an embedded store that admits one process needs the server stopped.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any

import click

from cli.common import configured_store, fail
from graph.errors import DuplicateNode, GraphError, NodeNotFound, StoreLocked

if TYPE_CHECKING:
    from web.extensions import AppState

__all__ = ["commands"]


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Worker processes (gunicorn; default: the number of cores). 1 serves with waitress in this "
                   "process.")
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Request threads per worker process.")
def serve_cmd(host: str, port: int, workers: int | None, threads: int) -> None:
    """Serve the coordinator UI and the JSON API: gunicorn with several worker processes, or waitress for one.

    Each gunicorn worker opens its own store (one Neo4j driver per process). SIGHUP restarts the workers
    gracefully with fresh settings, SIGTERM stops after the requests in flight. An embedded store that admits
    one process only is served by one worker, with a warning.
    """
    from cli.common import settings
    from web.server import default_workers, preload, run_gunicorn, run_waitress

    # the ranking's modules and the packaged encoder load in a thread while the app is made (read-only: no store
    # is opened there, so the gunicorn workers inherit them safely after the fork)
    preloading = preload(settings())
    from embeddings.errors import EmbeddingError
    from web import create_app
    from web.auth import demo_logins
    from web.extensions import get_state

    try:
        app = create_app()
    except (ValueError, GraphError, EmbeddingError) as err:
        fail(str(err))
    state = get_state(app)
    try:
        logins = demo_logins(state.store, checked=state.data_dir / "demo-logins-checked.json")
    except GraphError as err:  # e.g. Neo4j not up yet: serve anyway, /readyz reports it
        click.echo(f"warning: the store is not reachable yet ({err}); requests answer 503 until it is", err=True)
        logins = []
    wanted = default_workers() if workers is None else workers
    if wanted > 1:
        refusal = _second_process_refused(state)
        if refusal is not None:
            click.echo(f"warning: the embedded store admits one process ({refusal}); serving with 1 worker "
                       f"instead of {wanted}", err=True)
            wanted = 1
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def banner() -> None:
        click.echo(f"Jianglian (匠联) serving on {url}" + (f" with {wanted} worker processes" if wanted > 1 else ""))
        click.echo(f"  API: {url}api/v1/  docs: {url}api/v1/docs  health: {url}readyz")
        if logins:
            click.echo("  demo logins (password unchanged since `jianglian demo`):")
            for login in logins:
                where = f" {login['district'] or login['worker_id']}" if login["district"] or login["worker_id"] else ""
                click.echo(f"    {login['username']:<10} {login['password']}  ({login['role']}{where})")

    preloading.join()  # before the fork: nothing half-loaded in the parent
    if wanted == 1:
        try:
            run_waitress(app, host, port, threads, on_listening=banner)
        except OSError as err:
            state.close()
            fail(f"cannot listen on {host}:{port}: {err}")
        finally:
            state.close()
        click.echo("stopped")
        return
    state.close()  # the workers open their own store after the fork; nothing of this process is shared
    banner()
    code = run_gunicorn(host, port, workers=wanted, threads=threads)
    click.echo("stopped")
    if code:
        sys.exit(code)


def _second_process_refused(state: AppState) -> str | None:
    """Why a second process cannot open this app's store (the embedded store's lock), or None if it can."""
    from graph.config import open_store

    try:
        store = state.store
    except GraphError:
        return None  # Neo4j not up yet: any number of processes may connect once it is
    if store.kind != "memory":
        return None
    try:
        other = open_store(state.settings)
    except StoreLocked as err:
        return str(err)
    except GraphError:
        return None
    other.close()
    return None


# -- API keys -------------------------------------------------------------------------------------
@click.group("apikey")
def apikey_group() -> None:
    """Create, revoke and list API keys of the platform (the secret is shown once)."""


@apikey_group.command("create")
@click.option("--name", required=True, help="Who uses the key (e.g. 江苏工会网).")
@click.option("--scope", type=click.Choice(["read", "write"]), default="read", show_default=True)
def apikey_create(name: str, scope: str) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from web.auth import create_api_key

    with configured_store() as store:
        try:
            created = create_api_key(store, name=name, scope=scope)
        except ValueError as err:
            fail(str(err))
    click.echo(f"id:    {created.id}\nname:  {created.name}\nscope: {created.scope}")
    click.echo(f"key:   {created.key}")
    click.echo("Store the key now: it cannot be shown again. Send it as the X-API-Key header.", err=True)


@apikey_group.command("revoke")
@click.argument("key_id")
def apikey_revoke(key_id: str) -> None:
    """Revoke a key by its id (or its jl_<id> prefix); it stops working at once."""
    from web.auth import revoke_api_key

    with configured_store() as store:
        try:
            revoke_api_key(store, key_id)
        except NodeNotFound:
            fail(f"no API key {key_id!r}")
    click.echo(f"revoked {key_id}")


@apikey_group.command("list")
def apikey_list() -> None:
    """List keys (id, scope, name, created, revoked) without secrets."""
    from web.auth import list_api_keys

    with configured_store() as store:
        keys = list_api_keys(store)
    if not keys:
        click.echo("no API keys")
    for key in keys:
        status = f"revoked {key['revoked_at']}" if key.get("revoked_at") else "active"
        click.echo(f"{key['prefix']}\t{key['scope']}\t{key['name']}\tcreated {key.get('created_at', '')}\t{status}")


# -- users ----------------------------------------------------------------------------------------
@click.group("user")
def user_group() -> None:
    """Manage UI users (admin, city, district, viewer, worker)."""


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("password", hide_input=True, confirmation_prompt=True))


@user_group.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "city", "district", "viewer", "worker"]), required=True)
@click.option("--district", default=None, help="The district of a district coordinator (e.g. 亭湖区).")
@click.option("--worker-id", default=None, help="The worker a worker login belongs to.")
@click.option("--display-name", default=None)
@click.option("--email", default=None, help="Where notification e-mails go (optional; see `user email`).")
@click.option("--language", type=click.Choice(["zh", "en"]), default=None,
              help="The language of the user's notification e-mails (default: Chinese).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_create(username: str, role: str, district: str | None, worker_id: str | None, display_name: str | None,
                email: str | None, language: str | None, password_stdin: bool) -> None:
    """Create a user; the password is prompted for (or read from stdin) and stored hashed."""
    from web.auth import create_user

    password = _read_password(password_stdin)
    with configured_store() as store:
        if role == "worker" and worker_id and store.get_node("Worker", worker_id) is None:
            fail(f"no worker {worker_id!r}")
        try:
            user = create_user(store, username, password, role=role, district=district, worker_id=worker_id,
                               display_name=display_name)
        except ValueError as err:
            fail(str(err))
        except DuplicateNode:
            fail(f"user {username!r} already exists")
        if email:
            _set_email(store, username, email)
        if language:
            store.update_node("User", username, {"language": language})
    click.echo(f"created {user['id']} ({user['role']})")


def _set_email(store: Any, username: str, email: str | None) -> None:
    if email and not re.fullmatch(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+", email):
        fail(f"not an e-mail address: {email!r}")
    store.update_node("User", username, {"email": email or ""})


@user_group.command("email")
@click.argument("username")
@click.argument("address", required=False)
@click.option("--language", type=click.Choice(["zh", "en"]), default=None,
              help="Also set the language of the e-mails (unchanged without it).")
def user_email(username: str, address: str | None, language: str | None) -> None:
    """Set (or, without ADDRESS, remove) the address notification e-mails to USERNAME go to."""
    with configured_store() as store:
        if store.get_node("User", username) is None:
            fail(f"no user {username!r}")
        _set_email(store, username, address)
        if language:
            store.update_node("User", username, {"language": language})
    suffix = f" in {language}" if language else ""
    click.echo(f"{username}: notification e-mail {'to ' + address if address else 'off'}{suffix}")


@user_group.command("list")
def user_list() -> None:
    """List users with their role, district or worker."""
    from web.auth import list_users

    with configured_store() as store:
        users = list_users(store)
    if not users:
        click.echo("no users")
    for user in users:
        scope = user.get("district") or user.get("worker_id") or ""
        state = "" if user.get("active", True) else "\tdisabled"
        click.echo(f"{user['id']}\t{user.get('role')}\t{scope}{state}")


@user_group.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
def user_passwd(username: str, password_stdin: bool) -> None:
    """Change a user's password; every session of that user ends at once."""
    from web.auth import set_password

    password = _read_password(password_stdin)
    with configured_store() as store:
        try:
            set_password(store, username, password)
        except ValueError as err:
            fail(str(err))
        except NodeNotFound:
            fail(f"no user {username!r}")
    click.echo(f"password of {username} changed; their sessions are ended")


@user_group.command("disable")
@click.argument("username")
def user_disable(username: str) -> None:
    """Disable a user: no more logins, and every session of that user ends at once."""
    from web.auth import disable_user

    with configured_store() as store:
        try:
            disable_user(store, username)
        except NodeNotFound:
            fail(f"no user {username!r}")
    click.echo(f"disabled {username}")


@user_group.command("enable")
@click.argument("username")
def user_enable(username: str) -> None:
    """Enable a disabled user again (with the password they had)."""
    from web.auth import disable_user

    with configured_store() as store:
        try:
            disable_user(store, username, active=True)
        except NodeNotFound:
            fail(f"no user {username!r}")
    click.echo(f"enabled {username}")


commands: list[click.Command] = [serve_cmd, apikey_group, user_group]
