"""Login and logout of the coordinator pages (Flask-Login sessions over the users of :mod:`web.auth`).

Logging in starts a fresh session (:func:`web.auth.start_session`); too many wrong passwords for a
username or from an address refuse further attempts for a while (:mod:`web.throttle`, answered 429);
logging out ends every session of the user, copies of the cookie included (:func:`web.auth.end_session`).
"""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from web.auth import end_session, start_session
from web.auth import login as check_login
from web.throttle import login_throttle
from web.ui import bp
from web.ui.context import store
from web.ui.forms import ActionForm, LoginForm
from web.ui.i18n import safe_next

__all__ = ["home_for", "login", "logout"]


def home_for(role: str) -> str:
    """Where a user lands after logging in."""
    return url_for("ui.my_problems") if role == "worker" else url_for("ui.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int]:
    if current_user.is_authenticated:
        return redirect(home_for(current_user.role))
    form = LoginForm()
    if form.validate_on_submit():
        username = form.username.data.strip()
        throttle = login_throttle()
        wait = throttle.wait_seconds(username, request.remote_addr)
        if wait:
            flash(_("登录失败次数过多,请 %(minutes)s 分钟后再试。", minutes=max(1, -(-wait // 60))), "error")
            return render_template("ui/login.html", form=form), 429
        user = check_login(store(), username, form.password.data)
        if user is None:
            throttle.failed(username, request.remote_addr)
            flash(_("用户名或密码错误。"), "error")
        else:
            throttle.succeeded(username)
            start_session(user)
            return redirect(safe_next(request.args.get("next"), home_for(user.role)))
    return render_template("ui/login.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    form = ActionForm()
    if current_user.is_authenticated and form.validate_on_submit():
        end_session(store())
        flash(_("您已退出登录。"), "info")
    return redirect(url_for("ui.login"))
