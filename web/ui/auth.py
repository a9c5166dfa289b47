"""Login and logout of the coordinator pages (Flask-Login sessions over the users of :mod:`web.auth`)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from web.auth import login as check_login
from web.ui import bp
from web.ui.context import store
from web.ui.forms import ActionForm, LoginForm
from web.ui.i18n import safe_next

__all__ = ["home_for", "login", "logout"]


def home_for(role: str) -> str:
    """Where a user lands after logging in."""
    return url_for("ui.my_problems") if role == "worker" else url_for("ui.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    if current_user.is_authenticated:
        return redirect(home_for(current_user.role))
    form = LoginForm()
    if form.validate_on_submit():
        user = check_login(store(), form.username.data.strip(), form.password.data)
        if user is None:
            flash(_("用户名或密码错误。"), "error")
        else:
            login_user(user)
            return redirect(safe_next(request.args.get("next"), home_for(user.role)))
    return render_template("ui/login.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    form = ActionForm()
    if current_user.is_authenticated and form.validate_on_submit():
        logout_user()
        flash(_("您已退出登录。"), "info")
    return redirect(url_for("ui.login"))
