"""Flask-WTF forms of the coordinator pages (every form carries a CSRF token).

Text fields refuse C0 control characters and lone surrogates (:class:`NoControlCharacters`; tab,
newline and CR are allowed in multi-line text), as the JSON API does (:class:`web.api.schemas.String`).
"""

from __future__ import annotations

import re
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import (
    BooleanField,
    DecimalField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    AnyOf,
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from graph.model import SERVICE_TYPES

__all__ = ["ActionForm", "ApiKeyForm", "CloseProblemForm", "ConfirmOverrideForm", "DeclineForm", "EmailForm",
           "InviteForm", "LoginForm", "NoControlCharacters", "OnBehalfForm", "OutcomeForm", "ProblemForm", "UploadForm",
           "VolunteerForm", "WithdrawForm"]

_BAD_LINE = re.compile(r"[\x00-\x1f\ud800-\udfff]")
_BAD_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


class NoControlCharacters:
    """WTForms validator: no C0 control characters (but tab, LF, CR when ``multiline``), no lone surrogates."""

    def __init__(self, *, multiline: bool = False) -> None:
        self.pattern = _BAD_TEXT if multiline else _BAD_LINE

    def __call__(self, form: Any, field: Any) -> None:
        if isinstance(field.data, str) and self.pattern.search(field.data):
            raise ValidationError(_l("不能含有控制字符。"))


_LINE = NoControlCharacters()
_TEXT = NoControlCharacters(multiline=True)


class ActionForm(FlaskForm):
    """A button that changes state: only the CSRF token."""


class LoginForm(FlaskForm):
    username = StringField(_l("用户名"), validators=[DataRequired(), Length(max=80)])
    password = PasswordField(_l("密码"), validators=[DataRequired(), Length(max=200)])


class ProblemForm(FlaskForm):
    title = StringField(_l("问题标题"), validators=[DataRequired(), Length(max=200), _LINE])
    description = TextAreaField(_l("问题描述"), validators=[DataRequired(), Length(max=5000), _TEXT],
                                description=_l("现场情况、设备型号、已尝试的办法等,越具体匹配越准。"))
    enterprise_id = SelectField(_l("发布企业"), validators=[DataRequired()], choices=[])
    service_type = SelectField(_l("服务类型"), choices=[(s, s) for s in SERVICE_TYPES])
    skills = StringField(_l("所需技能"), validators=[Optional(), Length(max=500), _LINE],
                         description=_l("多个技能用顿号、逗号或分号分隔,例如:数控编程、PLC"))
    new_skills = BooleanField(_l("技能库中没有的技能作为新技能加入技能库"))
    district = SelectField(_l("所在区县"), validators=[DataRequired()], choices=[])


class InviteForm(FlaskForm):
    note = StringField(_l("邀请留言"), validators=[Optional(), Length(max=500), _TEXT])


class DeclineForm(FlaskForm):
    reason = StringField(_l("婉拒原因"), validators=[DataRequired(), Length(max=500), _TEXT])


class VolunteerForm(FlaskForm):
    """A worker volunteering for a problem (「我想接」), with an optional word to the coordinator."""

    note = StringField(_l("给协调员的留言(可选)"), validators=[Optional(), Length(max=500), _TEXT])


class EmailForm(FlaskForm):
    """Where a user's notification e-mails go (empty: none)."""

    email = StringField(_l("通知邮箱"), validators=[
        Optional(), Length(max=200), NoControlCharacters(),
        Regexp(r"^[^@\s<>,;\\\"']+@[^@\s<>,;\\\"']+\.[^@\s<>,;\\\"']+$", message=_l("请输入有效的邮箱地址"))])
    #: The language of the e-mails (``workflow.notifications.LANGUAGES``); not sent: left as it is.
    language = SelectField(_l("邮件语言"), choices=[("zh", "中文"), ("en", "English")], validate_choice=False,
                           validators=[Optional(), AnyOf(["zh", "en"], message=_l("请选择中文或English"))])


class OnBehalfForm(FlaskForm):
    """A coordinator accepting or declining for the invited worker: they confirm they spoke to the worker."""

    confirm = BooleanField(_l("我已与该劳模工匠本人确认,代其答复"), validators=[DataRequired()])


class CloseProblemForm(FlaskForm):
    reason = StringField(_l("关闭原因"), validators=[DataRequired(), Length(max=500), _TEXT],
                         description=_l("例如:企业已自行解决、需求取消。进行中的邀请会一并撤回。"))


class ConfirmOverrideForm(FlaskForm):
    """The second confirmation of a volunteer that the capacity or conflict-of-interest check refused: the
    coordinator ticks that they checked it and says why (kept in the match's history and the audit log).
    ``override_capacity`` / ``allow_conflict`` carry the refusals the page showed ("1")."""

    acknowledge = BooleanField(_l("我已核实上述情况,仍然确认这次报名"), validators=[DataRequired()])
    reason = TextAreaField(_l("原因(记入对接时间线和审计日志)"), validators=[DataRequired(), Length(max=500), _TEXT])
    override_capacity = HiddenField(validators=[Optional(), AnyOf(["1"])])
    allow_conflict = HiddenField(validators=[Optional(), AnyOf(["1"])])


class WithdrawForm(FlaskForm):
    reason = StringField(_l("撤回原因(可选)"), validators=[Optional(), Length(max=500), _TEXT])


class OutcomeForm(FlaskForm):
    """The outcome of a service. Nothing is pre-selected: the coordinator states whether it was solved and
    how satisfied the enterprise was (a default would be recorded unread as "solved, 5")."""

    solved = RadioField(_l("问题是否解决"), choices=[("y", _l("已解决")), ("n", _l("未解决"))],
                        validators=[InputRequired(_l("请选择问题是否解决。"))])
    hours = DecimalField(_l("服务时长(小时)"), validators=[InputRequired(), NumberRange(min=0, max=1000)],
                         places=1)
    trainees = IntegerField(_l("培训人次"), validators=[InputRequired(), NumberRange(min=0, max=100000)])
    satisfaction = SelectField(_l("企业满意度"),
                               choices=[("", _l("请选择")), *((str(i), str(i)) for i in (5, 4, 3, 2, 1))],
                               default="", validators=[DataRequired(_l("请选择企业满意度。"))])
    note = TextAreaField(_l("服务记录"), validators=[Optional(), Length(max=2000), _TEXT])


class UploadForm(FlaskForm):
    kind = SelectField(_l("数据类型"), choices=[("workers", _l("劳模工匠")), ("enterprises", _l("企业")),
                                            ("problems", _l("问题"))])
    file = FileField(_l("文件(.xlsx 或 .csv)"), validators=[
        FileRequired(), FileAllowed(["xlsx", "csv"], _l("只接受 .xlsx 或 .csv 文件"))])


class ApiKeyForm(FlaskForm):
    """A new platform API key: who uses it and what it may do."""

    name = StringField(_l("使用方"), validators=[DataRequired(), Length(max=80), _LINE])
    scope = SelectField(_l("权限"), choices=[("read", _l("只读")), ("write", _l("读写"))], default="read")
