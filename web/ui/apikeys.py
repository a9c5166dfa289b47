"""API keys of the platform, managed by an admin while the app runs.

With the embedded store only one process may open the data directory, so ``jianglian apikey`` needs the
server stopped; this page does the same through the running app. A new key is shown once, in the
response to its creation (never in a flash message, which would travel in the session cookie), and
only its hash is stored (:func:`web.auth.create_api_key`).
"""

from __future__ import annotations

from flask import abort, flash, make_response, redirect, render_template, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from graph.errors import NodeNotFound
from web.auth import create_api_key, list_api_keys, revoke_api_key
from web.ui import bp
from web.ui.access import role_required, user_name
from web.ui.context import store
from web.ui.forms import ActionForm, ApiKeyForm

__all__ = ["api_key_revoke", "api_keys"]


def _page(form: ApiKeyForm, created: object = None, status: int = 200) -> Response:
    keys = sorted(list_api_keys(store()), key=lambda k: str(k.get("created_at") or ""), reverse=True)
    response = make_response(render_template("ui/apikeys.html", form=form, keys=keys, created=created,
                                             action_form=ActionForm()), status)
    response.headers["Cache-Control"] = "no-store"  # the page may hold a new key
    return response


@bp.route("/apikeys", methods=["GET", "POST"])
@role_required("admin")
def api_keys() -> Response:
    form = ApiKeyForm()
    created = None
    if form.is_submitted():
        if not form.validate():
            return _page(form, status=400)
        created = create_api_key(store(), name=form.name.data or "", scope=form.scope.data or "read",
                                 created_by=user_name())
        form = ApiKeyForm(formdata=None)
    return _page(form, created)


@bp.route("/apikeys/<key_id>/revoke", methods=["POST"])
@role_required("admin")
def api_key_revoke(key_id: str) -> Response:
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        revoked = revoke_api_key(store(), key_id)
    except NodeNotFound:
        abort(404)
    flash(_("已停用密钥 %(prefix)s。", prefix=revoked.get("prefix") or key_id), "success")
    return redirect(url_for("ui.api_keys"))
