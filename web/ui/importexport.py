"""Import/export pages: template download, upload with a validation preview listing every bad row in
Chinese, apply in the background with a polled progress bar, export to Excel or CSV (UTF-8 BOM)."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, abort, current_app, flash, jsonify, redirect, render_template, url_for
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from graph.errors import DatasetError, GraphError, RowError
from graph.sheet_import import Preview, apply_rows, validate
from graph.spreadsheet import (
    COLUMNS,
    KINDS,
    LABEL_OF,
    UploadError,
    export_csv,
    export_xlsx,
    read_table,
    template_workbook,
)
from graph.store import GraphStore
from web import row_issues
from web.ui import bp
from web.ui.access import EDITORS, READERS, principal, role_required, user_district, user_role
from web.ui.context import recommender, store
from web.ui.forms import ActionForm, UploadForm
from web.ui.queries import districts

__all__ = ["ImportJob", "ImportJobs", "import_apply", "import_page", "import_preview", "import_progress"]

log = logging.getLogger(__name__)

# the preview page names each row problem's column and says what is wrong in the reader's language
bp.add_app_template_global(row_issues.problem_column, "problem_column")
bp.add_app_template_global(row_issues.problem_text, "problem_text")

KIND_LABELS = {"workers": _l("劳模工匠"), "enterprises": _l("企业"), "problems": _l("问题")}
EXTENSION_KEY = "jianglian_ui_imports"
JOB_TTL_SECONDS = 2 * 3600
#: Import jobs kept per user and in all (each holds a parsed file); beyond them the oldest are dropped.
JOBS_PER_USER = 3
JOBS_IN_ALL = 12
#: Rows of each kind (new, updated) the preview lists.
SHOWN = 50
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class ImportJob:
    """An uploaded file between preview and apply, then the background write and its progress."""

    id: str
    owner: str
    kind: str
    filename: str
    preview: Preview
    created: float = field(default_factory=time.monotonic)
    state: str = "preview"  # preview -> running -> done | failed
    done: int = 0
    total: int = 0
    message: str = ""
    #: The rows a failed write refused (the store changed since the preview), shown in the reader's language.
    refused: list[RowError] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "done": self.done, "total": self.total, "message": self.failure()}

    def failure(self) -> str:
        """Why the write failed, in the reader's language for refused rows ('' unless it failed)."""
        if not self.refused:
            return self.message
        label = LABEL_OF[self.kind]
        return "; ".join(row_issues.row_error_text(e, label) for e in self.refused[:5])[:500]


class ImportJobs:
    """The app's import jobs (in memory: a preview is only useful for the session that made it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, ImportJob] = {}

    def add(self, job: ImportJob) -> None:
        """Keep ``job``, dropping expired jobs and then the oldest ones past :data:`JOBS_PER_USER` for its
        owner and :data:`JOBS_IN_ALL` in all (a job still writing is never dropped)."""
        with self._lock:
            now = time.monotonic()
            for key in [k for k, j in self._jobs.items() if now - j.created > JOB_TTL_SECONDS and j.state != "running"]:
                del self._jobs[key]
            self._jobs[job.id] = job
            idle = sorted((j for j in self._jobs.values() if j.state != "running" and j is not job),
                          key=lambda j: j.created)
            mine = [j for j in idle if j.owner == job.owner]
            for old in mine[:max(0, len(mine) + 1 - JOBS_PER_USER)]:
                del self._jobs[old.id]
                idle.remove(old)
            while len(self._jobs) > JOBS_IN_ALL and idle:
                del self._jobs[idle.pop(0).id]

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)

    def get(self, job_id: str) -> ImportJob | None:
        with self._lock:
            return self._jobs.get(job_id)


def _jobs(app: Flask | None = None) -> ImportJobs:
    target = app or current_app
    jobs = target.extensions.get(EXTENSION_KEY)
    if jobs is None:
        jobs = target.extensions.setdefault(EXTENSION_KEY, ImportJobs())
    assert isinstance(jobs, ImportJobs)
    return jobs


def _own_job(job_id: str) -> ImportJob:
    job = _jobs().get(job_id)
    p = principal()
    if job is None:
        abort(404)
    if p is None or job.owner != p.actor:
        abort(403)
    return job


@bp.route("/import", methods=["GET", "POST"])
@role_required(*READERS)
def import_page() -> str | Response:
    form = UploadForm()
    can_import = user_role() in EDITORS
    if form.is_submitted() and not can_import:
        abort(403)
    if can_import and form.validate_on_submit():
        upload = form.file.data
        kind = form.kind.data
        try:
            records = read_table(upload.filename or "", upload.read())
            own = user_district() if user_role() == "district" else None
            preview = validate(store(), kind, records, district=own, districts=districts(store()))
        except UploadError as err:
            flash(row_issues.upload_error_text(err), "error")
            return render_template("ui/import.html", form=form, kinds=KINDS, kind_labels=KIND_LABELS,
                                   can_import=can_import)
        p = principal()
        assert p is not None
        job = ImportJob(id=secrets.token_urlsafe(12), owner=p.actor, kind=kind, filename=upload.filename or "",
                        preview=preview, total=len(preview.rows))
        _jobs().add(job)
        return redirect(url_for("ui.import_preview", job_id=job.id))
    return render_template("ui/import.html", form=form, kinds=KINDS, kind_labels=KIND_LABELS, can_import=can_import)


@bp.route("/import/<job_id>")
@role_required(*EDITORS)
def import_preview(job_id: str) -> str:
    job = _own_job(job_id)
    columns = COLUMNS[job.kind]
    rows = list(zip(job.preview.row_numbers, job.preview.rows, job.preview.changes, strict=True))
    return render_template("ui/import_preview.html", job=job, columns=columns, kind_label=KIND_LABELS[job.kind],
                           sample=[(n, row) for n, row, changes in rows if changes is None][:SHOWN],
                           updates=[(n, row, changes) for n, row, changes in rows if changes][:SHOWN],
                           shown=SHOWN, form=ActionForm())


def _run(job: ImportJob, target: GraphStore, rec: Any) -> None:
    def progress(done: int, total: int) -> None:
        job.done, job.total = done, total

    try:
        apply_rows(target, job.kind, job.preview.rows, progress=progress)
    except GraphError as err:  # DatasetError when the store changed since the preview, StoreUnavailable...
        log.warning("import %s failed: %s", job.id, err)
        job.message = str(err)[:500]
        job.refused = list(err.errors) if isinstance(err, DatasetError) else []
        job.state = "failed"
        return
    job.state = "done"
    if rec is not None and hasattr(rec, "refresh"):
        rec.refresh()  # the next ranking sees the new rows (the write is done either way)


@bp.route("/import/<job_id>/apply", methods=["POST"])
@role_required(*EDITORS)
def import_apply(job_id: str) -> Response:
    job = _own_job(job_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    if job.state == "preview" and job.preview.rows:
        job.state = "running"
        threading.Thread(target=_run, args=(job, store(), recommender()), daemon=True,
                         name=f"import-{job.id}").start()
    return redirect(url_for("ui.import_preview", job_id=job.id))


@bp.route("/import/<job_id>/progress")
@role_required(*EDITORS)
def import_progress(job_id: str) -> Response:
    return jsonify(_own_job(job_id).status())


@bp.route("/import/template/<kind>.xlsx")
@role_required(*READERS)
def import_template(kind: str) -> Response:
    if kind not in KINDS:
        abort(404)
    return _download(template_workbook(kind), f"{kind}-template.xlsx", XLSX)


@bp.route("/export/<kind>.<fmt>")
@role_required(*READERS)
def export(kind: str, fmt: str) -> Response:
    if kind not in KINDS or fmt not in ("xlsx", "csv"):
        abort(404)
    # contacts are private: only roles that may see every worker's contact export them
    private = user_role() in ("admin", "city")
    if fmt == "xlsx":
        return _download(export_xlsx(store(), kind, include_private=private), f"{kind}.xlsx", XLSX)
    # "text/csv" only: Flask adds "; charset=utf-8" itself (naming it here repeated it)
    return _download(export_csv(store(), kind, include_private=private), f"{kind}.csv", "text/csv")


def _download(data: bytes, filename: str, mimetype: str) -> Response:
    response = current_app.response_class(data, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response
