"""The models page: every kept version with what it learned and how well, rollback, 'train now'.

Reading needs the viewer role; rolling back and training need marketer (or owner), by a CSRF-
protected POST, and are in the audit log. A rollback moves the registry's ``current`` link: this
process serves the chosen version at once (:meth:`ServingLayer.refresh`), every other web process
within ``MODEL_CHECK_SECONDS`` (their model thread watches the link), and answers cached in Redis
under the old version are not served again (their keys carry the version). Training never runs
here: 'train now' queues a job for the trainer process (:mod:`recommender.train_jobs`) and the page
follows its progress through :func:`job`.
"""

from __future__ import annotations

import redis
from flask import abort, jsonify, redirect, request, url_for
from flask_login import current_user

from accounts import audit
from recommender.model_versions import version_rows
from recommender.registry import ModelRegistry, RegistryError
from recommender.train_jobs import TrainJobs
from webapp.clients import clients
from webapp.console import bp
from webapp.console.access import site_page
from webapp.console.tables import Chart, Column, Table, respond
from webapp.recommend import serving
from webapp.train_cli import registry_dir

MAX_VERSION = 80


def _minute(moment) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else None


def versions_table(rows: list[dict]) -> Table:
    """Every kept version, newest first; the chart compares each one's nDCG@10 with popularity's."""
    shown = [
        {
            **row,
            "status": "current" if row["current"] else "",
            "trained_at": _minute(row["trained_at"]),
            "data_from": _minute(row["data_from"]),
            "data_to": _minute(row["data_to"]),
            "promoted_at": _minute(row["promoted_at"]) or "never",
            "kind": row["kind"] or "not recorded",
        }
        for row in rows
    ]
    return Table(
        "versions",
        "Model versions",
        [
            Column("version", "Version"),
            Column("status", "Status"),
            Column("trained_at", "Trained (UTC)"),
            Column("data_from", "Data from (UTC)"),
            Column("data_to", "Data to (UTC)"),
            Column("customers", "Customers", "int"),
            Column("items", "Items", "int"),
            Column("interactions", "Interactions", "int"),
            Column("ndcg", "nDCG@10", "float"),
            Column("popularity_ndcg", "Popularity nDCG@10", "float"),
            Column("ndcg_gain", "Gain over popularity", "pct"),
            Column("kind", "Model"),
            Column("training_seconds", "Training time (s)", "float"),
            Column("promoted_at", "First promoted (UTC)"),
        ],
        shown,
        chart=Chart("bar", x="version", series=("ndcg", "popularity_ndcg")),
        note="nDCG@10 on the validation split (each customer's latest 20% of events), of the "
        "model and of popularity on the same split; a version is promoted only if it does at "
        "least as well. Figures an older version did not record show as –.",
        empty="No model version yet: train one with the button below, or wait for the trainer.",
    )


def _page(site_id: int, status: int = 200, errors: dict | None = None, **extra):
    registry = ModelRegistry(registry_dir(site_id))
    rows = version_rows(registry)
    jobs = TrainJobs(clients().redis)
    try:
        job, listening = jobs.latest(site_id), jobs.trainer_listening()
    except redis.RedisError:
        job, listening = None, None
    page = respond(
        "console/models.html",
        [versions_table(rows)],
        rows=rows,
        current=registry.current(),
        job=job,
        trainer_listening=listening,
        errors=errors or {},
        rolled_back=request.args.get("rolled_back", "")[:MAX_VERSION],
        **extra,
    )
    return page, status


@bp.get("/<int:site_id>/models")
@site_page("viewer")
def models(site_id: int):
    """The site's model versions, which one is current, and the last 'train now' job."""
    return _page(site_id)


@bp.post("/<int:site_id>/models/rollback")
@site_page("marketer")
def rollback(site_id: int):
    """Make a kept version current again (the form must confirm it)."""
    registry = ModelRegistry(registry_dir(site_id))
    version = request.form.get("version", "")[:MAX_VERSION]
    errors = {}
    if version not in registry.versions():
        errors["version"] = "Choose one of the kept versions."
    elif version == registry.current():
        errors["version"] = f"{version} is already current."
    if request.form.get("confirm") != "yes":
        errors["confirm"] = "Tick the box to confirm the rollback."
    if errors:
        return _page(site_id, 422, errors, form={"version": version})
    previous = registry.current()
    try:
        registry.rollback(to=version)
    except RegistryError as e:  # pruned or promoted by the trainer in between
        return _page(site_id, 422, {"version": str(e)}, form={"version": version})
    serving().refresh(site_id)
    audit.record(
        clients().engine,
        "model.rollback",
        staff_id=current_user.staff_id,
        email=current_user.email,
        site_id=site_id,
        detail={"from": previous, "to": version},
    )
    return redirect(url_for("console.models", site_id=site_id, rolled_back=version), 303)


@bp.post("/<int:site_id>/models/train")
@site_page("marketer")
def train_now(site_id: int):
    """Ask the trainer to train this site now (or show the job already queued or running)."""
    try:
        job, created = TrainJobs(clients().redis).request(site_id, current_user.email)
    except redis.RedisError as e:
        message = f"Redis is unreachable ({e}), so the trainer cannot be asked; try again soon."
        return _page(site_id, 503, {"train": message})
    if created:
        audit.record(
            clients().engine,
            "model.train",
            staff_id=current_user.staff_id,
            email=current_user.email,
            site_id=site_id,
            detail={"job": job.job_id},
        )
    return redirect(url_for("console.models", site_id=site_id) + "#train", 303)


@bp.get("/<int:site_id>/models/jobs/<job_id>")
@site_page("viewer")
def job(site_id: int, job_id: str):
    """A 'train now' job's state, progress and message as JSON (the page's poller reads it)."""
    jobs = TrainJobs(clients().redis)
    found = jobs.get(job_id)
    if found is None or found.site_id != site_id:
        abort(404)
    return jsonify({**found.as_json(), "trainer_listening": jobs.trainer_listening()})
