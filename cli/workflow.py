"""Workflow commands: ``assign`` (campaign plan), ``progress`` (targets) and ``match`` (two-way selection)."""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.common import configured_store, fail, settings
from graph.errors import GraphError
from graph.store import GraphStore
from recommender.errors import RecommenderError
from workflow.errors import WorkflowError
from workflow.progress import programme_progress
from workflow.selection import Selection
from workflow.targets import load_targets

if TYPE_CHECKING:  # the assignment solver (scipy.optimize, networkx) is imported by `assign` only: not every command
    from workflow.assign import AssignmentInputs, Plan

__all__ = ["commands", "format_table"]

METRIC_NAMES = {"visits": "进企业人次", "problems_solved": "解决问题", "people_trained": "培训人次"}


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _cut(text: str, width: int) -> str:
    if _width(text) <= width:
        return text
    out = ""
    for ch in text:
        if _width(out + ch) > width - 1:
            break
        out += ch
    return out + "…"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, max_width: int = 28) -> str:
    """A plain-text table whose columns line up with Chinese text (wide characters count twice).

    Examples
    --------
    >>> print(format_table(["id", "名称"], [["W1", "王建国"]]))
    id  名称
    --  ------
    W1  王建国
    """
    cells = [[_cut(str(c), max_width) for c in row] for row in rows]
    widths = [max([_width(h)] + [_width(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v + " " * (w - _width(v)) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(list(headers)), line(["-" * w for w in widths]), *(line(r) for r in cells)])


@contextmanager
def _errors() -> Iterator[None]:
    """Domain errors become one-line messages (exit status 1), never tracebacks."""
    try:
        yield
    except (RecommenderError, WorkflowError, GraphError, ValueError) as err:
        raise click.ClickException(str(err)) from err


def _recommender(store: GraphStore) -> Any:
    from recommender.engine import Recommender

    return Recommender(store)


def _score_pairs(store: GraphStore, problem_ids: Sequence[str]) -> tuple[dict[str, dict[str, float]], str]:
    """Fused scores of the eligible workers for each problem, and the model version that made them."""
    recommender = _recommender(store)
    return recommender.score_pairs(list(problem_ids)), str(getattr(recommender, "model_version", ""))


def _print_plan(plan: Plan, inputs: AssignmentInputs, limit: int | None) -> None:
    rows = [[p, inputs.titles.get(p, ""), w, inputs.names.get(w, w), f"{s:.4f}", inputs.team_of.get(w, "")]
            for p, w, s in plan.pairs]
    shown = rows if limit is None else rows[:limit]
    click.echo(format_table(["problem", "title", "worker", "name", "score", "team"], shown))
    if len(shown) < len(rows):
        click.echo(f"... {len(rows) - len(shown)} more pair(s)")


def _summary(label: str, plan: Plan, demand: int) -> str:
    filled = len(plan.pairs)
    return (f"{label:<14} pairs {filled:>5}  total {plan.total:10.4f}  objective {plan.objective:10.4f}  "
            f"coverage {plan.coverage:7.2%} ({filled}/{demand})  unmet problems {len(plan.unmet):>4}  "
            f"{plan.seconds * 1000:8.1f} ms")


@click.command("assign")
@click.option("--dry-run", is_flag=True, help="Print the plan and do not invite anybody.")
@click.option("--actor", default=lambda: f"cli:{os.environ.get('USER', 'coordinator')}", show_default="cli:$USER",
              help="Who the invitations are recorded as made by.")
@click.option("--objective", type=click.Choice(["score", "coverage"]), default="score", show_default=True,
              help="Maximise the total score, or fill as many slots as possible first.")
@click.option("--city-team-penalty", type=float, default=0.2, show_default=True,
              help="Fraction of the score a city-team worker loses outside their district team.")
@click.option("--allow-cross-district", is_flag=True, help="Also use other districts' teams (penalised).")
@click.option("--cross-district-penalty", type=float, default=0.4, show_default=True)
@click.option("--min-score", type=float, default=None, help="Ignore pairs scoring at most this.")
@click.option("--solver", type=click.Choice(["flow", "lp"]), default="flow", show_default=True,
              help="networkx min-cost flow, or HiGHS LP with column generation (same optimum, faster at scale).")
@click.option("--limit", type=int, default=None, help="Print at most this many pairs.")
@click.option("--json", "as_json", is_flag=True, help="Print the plans as JSON instead of a table.")
def assign_cmd(dry_run: bool, actor: str, objective: str, city_team_penalty: float, allow_cross_district: bool,
               cross_district_penalty: float, min_score: float | None, solver: str, limit: int | None,
               as_json: bool) -> None:
    """Plan invitations for every open problem (min-cost flow), compared with greedy.

    Without --dry-run the plan's invitations are created.
    """
    from workflow.assign import apply_plan, assignment_inputs, greedy_assignment, plan_assignment

    with configured_store() as store, _errors():
        selection = Selection(store)
        inputs = assignment_inputs(store, selection=selection)
        problem_ids = [p for p, n in sorted(inputs.demand.items()) if n > 0]
        if not problem_ids:
            click.echo("no open problem needs a worker")
            return
        scores, model_version = _score_pairs(store, problem_ids)
        options: dict[str, Any] = {
            **inputs.kwargs(), "city_team_penalty": city_team_penalty, "allow_cross_district": allow_cross_district,
            "cross_district_penalty": cross_district_penalty, "min_score": min_score}
        plan = plan_assignment(scores, objective=objective, solver=solver, **options)  # type: ignore[arg-type]
        greedy = greedy_assignment(scores, objective=objective, **options)  # type: ignore[arg-type]
        demand = sum(inputs.demand[p] for p in scores)
        if as_json:
            click.echo(json.dumps({"plan": plan.to_dict(), "greedy": greedy.to_dict(), "demand": demand,
                                   "model_version": model_version, "dry_run": dry_run}, ensure_ascii=False))
        else:
            _print_plan(plan, inputs, limit)
            click.echo("")
            click.echo(_summary("min-cost flow" if solver == "flow" else "LP", plan, demand))
            click.echo(_summary("greedy", greedy, demand))
        if dry_run:
            return
        applied = apply_plan(selection, plan, actor, model_version=model_version)
    for problem_id, worker_id, why in applied.skipped:
        click.echo(f"skipped {problem_id} / {worker_id}: {why}", err=True)
    click.echo(f"created {len(applied.created)} invitation(s); skipped {len(applied.skipped)}")


@click.command("progress")
@click.option("--today", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Report as of this date (default: today, China Standard Time).")
@click.option("--targets", "targets_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A JSON or TOML targets file (default: $JIANGLIAN_TARGETS, else built-in).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
def progress_cmd(today: Any, targets_file: Path | None, as_json: bool) -> None:
    """Progress against the programme targets per district and phase (at-risk cells marked !)."""
    day: date | None = today.date() if today is not None else None
    with configured_store() as store, _errors():
        report = programme_progress(store, targets=load_targets(targets_file or settings().targets_file), today=day)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    phases = report["phases"]
    current = next((p["name"] for p in phases if p["current"]), "—")
    click.echo(f"as of {report['today']} (current phase: {current})")
    headers = ["district", *(f"{METRIC_NAMES[m]}" for m in report["metrics"])]

    def fmt(c: Mapping[str, Any]) -> str:
        return f"{c['done']}/{c['target']}{'!' if c['at_risk'] else ''}"

    rows = [[d, *(fmt(report["by_district"][d]["total"][m]) for m in report["metrics"])] for d in report["districts"]]
    rows.append(["全市", *(fmt(report["city"]["total"][m]) for m in report["metrics"])])
    click.echo(format_table(headers, rows))
    click.echo("")
    phase_rows = [[p["name"], f"{p['start']}…{p['end']}",
                   *(fmt(report["city"]["phases"][i][m]) for m in report["metrics"])] for i, p in enumerate(phases)]
    click.echo(format_table(["phase", "dates", *headers[1:]], phase_rows))
    if report["at_risk"]:
        click.echo(f"\n{len(report['at_risk'])} district/phase/metric cell(s) at risk")
    if any(report["unattributed"].values()):
        click.echo(f"not in a listed district: {report['unattributed']}")


# -- the two-way selection from the command line ---------------------------------------------------------
@click.group("match")
def match_group() -> None:
    """Invite workers and record their answers and outcomes (two-way selection)."""


def _show(row: Mapping[str, Any]) -> None:
    keys = ("id", "problem_id", "worker_id", "state", "updated_at", "reason", "solved", "hours", "trainees",
            "satisfaction")
    click.echo("  ".join(f"{k}={row[k]}" for k in keys if row.get(k) not in (None, "")))


def _actor_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--actor", required=True, help="Who is acting (recorded in the audit trail).")(f)


@match_group.command("invite")
@click.argument("problem_id")
@click.argument("worker_id")
@_actor_option
@click.option("--note", default="")
@click.option("--allow-conflict", is_flag=True, help="Invite a worker to their own employer's problem.")
@click.option("--override-capacity", is_flag=True, help="Invite a worker who is at capacity.")
def invite_cmd(problem_id: str, worker_id: str, actor: str, note: str, allow_conflict: bool,
               override_capacity: bool) -> None:
    """Invite WORKER_ID to PROBLEM_ID."""
    with configured_store() as store, _errors():
        _show(Selection(store).invite(problem_id, worker_id, actor=actor, note=note, allow_conflict=allow_conflict,
                                      override_capacity=override_capacity))


@match_group.command("accept")
@click.argument("match_id")
@_actor_option
def accept_cmd(match_id: str, actor: str) -> None:
    """The worker accepts an invitation."""
    with configured_store() as store, _errors():
        _show(Selection(store).accept(match_id, actor=actor))


@match_group.command("decline")
@click.argument("match_id")
@_actor_option
@click.option("--reason", required=True)
def decline_cmd(match_id: str, actor: str, reason: str) -> None:
    """The worker declines an invitation (a reason is required)."""
    with configured_store() as store, _errors():
        _show(Selection(store).decline(match_id, reason=reason, actor=actor))


@match_group.command("complete")
@click.argument("match_id")
@_actor_option
@click.option("--solved/--unsolved", required=True)
@click.option("--hours", type=float, required=True)
@click.option("--trainees", type=int, required=True, help="People trained during the engagement.")
@click.option("--satisfaction", type=click.IntRange(1, 5), required=True, help="Enterprise satisfaction 1-5.")
@click.option("--note", default="")
def complete_cmd(match_id: str, actor: str, solved: bool, hours: float, trainees: int, satisfaction: int,
                 note: str) -> None:
    """Record the outcome of an accepted match."""
    with configured_store() as store, _errors():
        _show(Selection(store).complete(match_id, solved=solved, hours=hours, trainees=trainees,
                                        satisfaction=satisfaction, actor=actor, note=note))


@match_group.command("withdraw")
@click.argument("match_id")
@_actor_option
@click.option("--reason", default="")
def withdraw_cmd(match_id: str, actor: str, reason: str) -> None:
    """Withdraw an invited or accepted match."""
    with configured_store() as store, _errors():
        _show(Selection(store).withdraw(match_id, actor=actor, reason=reason))


@match_group.command("volunteer")
@click.argument("problem_id")
@click.argument("worker_id")
@_actor_option
@click.option("--note", default="")
def volunteer_cmd(problem_id: str, worker_id: str, actor: str, note: str) -> None:
    """WORKER_ID volunteers for PROBLEM_ID (「我想接」); a coordinator then confirms or declines."""
    with configured_store() as store, _errors():
        _show(Selection(store).volunteer(problem_id, worker_id, actor=actor, note=note))


@match_group.command("confirm")
@click.argument("match_id")
@_actor_option
@click.option("--allow-conflict", is_flag=True, help="Confirm a worker for their own employer's problem.")
@click.option("--override-capacity", is_flag=True, help="Confirm a worker who is at capacity.")
@click.option("--reason", default="", help="Why (an override): kept in the match's history and the audit log.")
def confirm_cmd(match_id: str, actor: str, allow_conflict: bool, override_capacity: bool, reason: str) -> None:
    """A coordinator confirms a volunteer: the match is accepted."""
    with configured_store() as store, _errors():
        _show(Selection(store).confirm(match_id, actor=actor, allow_conflict=allow_conflict,
                                       override_capacity=override_capacity, reason=reason))


@match_group.command("decline-volunteer")
@click.argument("match_id")
@_actor_option
@click.option("--reason", required=True)
def decline_volunteer_cmd(match_id: str, actor: str, reason: str) -> None:
    """A coordinator declines a volunteer (the worker sees the reason)."""
    with configured_store() as store, _errors():
        _show(Selection(store).decline_volunteer(match_id, reason=reason, actor=actor))


@match_group.command("list")
@click.option("--problem", "problem_id", default=None)
@click.option("--worker", "worker_id", default=None)
@click.option("--state", default=None)
def list_cmd(problem_id: str | None, worker_id: str | None, state: str | None) -> None:
    """List matches, oldest first."""
    with configured_store() as store, _errors():
        for row in Selection(store).matches(problem_id=problem_id, worker_id=worker_id, state=state):
            _show(row)


@match_group.command("audit")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--kind", default=None)
@click.option("--actor", default=None)
def audit_cmd(limit: int, kind: str | None, actor: str | None) -> None:
    """The audit trail, newest first, one JSON object per line."""
    with configured_store() as store, _errors():
        for event in Selection(store).audit(limit=limit, kind=kind, actor=actor):
            event.pop("detail_json", None)
            click.echo(json.dumps(event, ensure_ascii=False))


# -- the outbox (notification e-mail) ----------------------------------------------------------------
@click.group("outbox")
def outbox_group() -> None:
    """Notification e-mail: send what is due, list what was sent (settings: JIANGLIAN_SMTP_*, README)."""


def _mail_config() -> dict[str, Any]:
    """The web app's ``JIANGLIAN_*`` mail settings from the environment, without the prefix."""
    return {k.removeprefix("JIANGLIAN_"): v for k, v in os.environ.items() if k.startswith("JIANGLIAN_")}


@outbox_group.command("send")
@click.option("--loop", is_flag=True, help="Keep sending every --interval seconds until interrupted.")
@click.option("--interval", type=click.FloatRange(0.1), default=30.0, show_default=True)
def outbox_send_cmd(loop: bool, interval: float) -> None:
    """Send the due notification e-mails (retries and failures are recorded on each message).

    Run it from cron, or with --loop, where the web process does not send (JIANGLIAN_OUTBOX_SENDER=false),
    e.g. with several web processes over Neo4j. Senders may overlap: each message is claimed by one.
    """
    import time

    from workflow.outbox import Outbox, SmtpChannel, SmtpSettings

    config = _mail_config()
    try:
        smtp = SmtpSettings.from_config(config)
    except ValueError as err:
        fail(str(err))
    if smtp is None:
        fail("no mail relay configured: set JIANGLIAN_SMTP_HOST (and JIANGLIAN_SMTP_FROM, README: Settings)")
    assert smtp is not None
    with configured_store() as store, _errors():
        outbox = Outbox(store, {"email": SmtpChannel(smtp, base_url=str(config.get("PUBLIC_URL") or ""))},
                        max_attempts=int(config.get("OUTBOX_MAX_ATTEMPTS") or 8),
                        base_delay=float(config.get("OUTBOX_RETRY_SECONDS") or 30.0))
        while True:
            report = outbox.deliver()
            if report.sent or report.retried or report.failed or not loop:
                click.echo(f"sent {len(report.sent)}, to retry {len(report.retried)}, failed {len(report.failed)}")
            if not loop:
                return
            time.sleep(interval)


@outbox_group.command("list")
@click.option("--status", type=click.Choice(["pending", "sending", "sent", "failed"]), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
def outbox_list_cmd(status: str | None, limit: int) -> None:
    """Messages, newest first: status, attempts, recipient, subject, sent time or last error."""
    with configured_store() as store, _errors():
        rows = store.list_nodes("OutboxMessage", where={"status": status} if status else None)
    rows.sort(key=lambda r: str(r["id"]), reverse=True)
    for row in rows[:limit]:
        when = row.get("sent_at") or row.get("next_attempt_at") or ""
        click.echo("\t".join(str(v) for v in (row["id"], row.get("status"), row.get("attempts"), row.get("to"),
                                               when, row.get("subject"), row.get("last_error") or "")))


commands: list[click.Command] = [assign_cmd, progress_cmd, match_group, outbox_group]
