"""'Train now' requests: queued in Redis by the console, run by the trainer process, tracked there.

The web process never trains: :meth:`TrainJobs.request` puts a job on one Redis list and marks it
as its site's active job (one at a time per site: asking again returns the running one). The
trainer (``flask --app wsgi train --take-requests``) takes jobs between its scheduled runs
(:meth:`TrainJobs.take`) and reports each training stage into the job's hash (state, progress
0..1, message), which the console's models page polls. Every key carries a TTL, so a job whose
trainer died ends as ``failed`` for the page instead of running forever.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis

QUEUE_KEY = "ecrm:train:requests"
TRAINER_KEY = "ecrm:train:trainer"  # set while a trainer takes requests (a heartbeat)
JOB_TTL_SECONDS = 24 * 3600  # a finished job stays readable this long
RUNNING_TTL_SECONDS = 3600  # a running job not heard from this long is dead
TRAINER_TTL_SECONDS = 30

STATES = ("queued", "running", "done", "failed")
# How far along a training run is once each stage of :func:`recommender.training.train` is done
# (the trainer's stage lines: read, tune, fit, evaluate, check, cache, promote).
STAGE_PROGRESS = {
    "read": 0.1,
    "tune": 0.4,
    "fit": 0.6,
    "evaluate": 0.75,
    "check": 0.8,
    "cache": 0.9,
    "promote": 0.95,
}


def job_key(job_id: str) -> str:
    """The Redis hash of one job."""
    return f"ecrm:train:job:{job_id}"


def active_key(site_id: int) -> str:
    """The id of the site's queued or running job, while there is one."""
    return f"ecrm:train:active:{site_id}"


@dataclass(frozen=True)
class TrainJob:
    """One 'train now' request as the page shows it."""

    job_id: str
    site_id: int
    state: str
    progress: float
    message: str
    requested_by: str
    requested_at: float
    updated_at: float
    version: str = ""

    @property
    def finished(self) -> bool:
        """Done or failed: nothing more will change."""
        return self.state in ("done", "failed")

    def as_json(self) -> dict[str, Any]:
        """What the progress poller reads (static/console.js)."""
        return {
            "job_id": self.job_id,
            "site_id": self.site_id,
            "state": self.state,
            "progress": self.progress,
            "message": self.message,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at,
            "updated_at": self.updated_at,
            "version": self.version or None,
        }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class TrainJobs:
    """The 'train now' queue and its jobs' progress, on one Redis."""

    def __init__(self, client: redis.Redis):
        self.redis = client

    def request(self, site_id: int, requested_by: str) -> tuple[TrainJob, bool]:
        """Queue a training of the site: (the job, True) or (the one already queued or running,
        False)."""
        job_id = uuid.uuid4().hex
        for _ in range(3):
            if self.redis.set(active_key(site_id), job_id, nx=True, ex=RUNNING_TTL_SECONDS):
                break
            existing = self.redis.get(active_key(site_id))
            job = self.get(_text(existing)) if existing is not None else None
            if job is not None and not job.finished:
                return job, False
            # The marker outlived its job (expired, or a crash between the two writes).
            self.redis.delete(active_key(site_id))
        else:
            raise RuntimeError(f"could not queue a training of site {site_id}; try again")
        now = time.time()
        fields = {
            "site_id": site_id,
            "state": "queued",
            "progress": 0.0,
            "message": "waiting for the trainer",
            "requested_by": requested_by,
            "requested_at": now,
            "updated_at": now,
            "version": "",
        }
        with self.redis.pipeline() as pipe:
            pipe.hset(job_key(job_id), mapping=fields)
            pipe.expire(job_key(job_id), JOB_TTL_SECONDS)
            pipe.rpush(QUEUE_KEY, job_id)
            pipe.execute()
        return self._job(job_id, fields), True

    def get(self, job_id: str) -> TrainJob | None:
        """A job by id, or None (unknown or expired)."""
        if not job_id or len(job_id) > 64:
            return None
        fields = self.redis.hgetall(job_key(job_id))
        if not fields:
            return None
        return self._job(job_id, {_text(k): _text(v) for k, v in fields.items()})

    def active(self, site_id: int) -> TrainJob | None:
        """The site's queued or running job, if any."""
        job_id = self.redis.get(active_key(site_id))
        job = self.get(_text(job_id)) if job_id is not None else None
        return job if job is not None and not job.finished else None

    def latest(self, site_id: int) -> TrainJob | None:
        """The site's job to show: the active one, else the last one run (while kept)."""
        job = self.active(site_id)
        if job is not None:
            return job
        job_id = self.redis.get(f"ecrm:train:last:{site_id}")
        return self.get(_text(job_id)) if job_id is not None else None

    def take(self, timeout: float = 0.0) -> TrainJob | None:
        """The next queued job, now marked running; None if none came within ``timeout`` s.

        Jobs that expired while queued are skipped.
        """
        deadline = time.monotonic() + timeout
        while True:
            if timeout > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                popped = self.redis.blpop([QUEUE_KEY], timeout=max(1, int(left)))
                job_id = popped[1] if popped else None
            else:
                job_id = self.redis.lpop(QUEUE_KEY)
            if job_id is None:
                if timeout <= 0:
                    return None
                continue
            job = self.get(_text(job_id))
            if job is None or job.state != "queued":
                continue
            self.update(job.job_id, state="running", message="starting")
            self.redis.set(f"ecrm:train:last:{job.site_id}", job.job_id, ex=JOB_TTL_SECONDS)
            return self.get(job.job_id)

    def update(self, job_id: str, **fields: Any) -> None:
        """Change a job's fields (state, progress, message, version) and renew its TTLs."""
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"state must be one of {STATES}")
        fields["updated_at"] = time.time()
        with self.redis.pipeline() as pipe:
            pipe.hset(job_key(job_id), mapping=fields)
            pipe.expire(job_key(job_id), JOB_TTL_SECONDS)
            pipe.execute()
        job = self.get(job_id)
        if job is None:
            return
        if job.finished:
            # Only this job's marker: a newer job of the site keeps its own.
            if _text(self.redis.get(active_key(job.site_id)) or b"") == job_id:
                self.redis.delete(active_key(job.site_id))
        else:
            self.redis.expire(active_key(job.site_id), RUNNING_TTL_SECONDS)

    def stage(self, job_id: str, stage: str, message: str) -> None:
        """Report a training stage (the trainer's stage lines) as progress."""
        progress = STAGE_PROGRESS.get(stage)
        fields: dict[str, Any] = {"message": f"{stage}: {message}"}
        if progress is not None:
            # Never backwards: a site's first model is promoted before its cache is warmed.
            so_far = float(_text(self.redis.hget(job_key(job_id), "progress") or b"0"))
            fields["progress"] = max(progress, so_far)
        self.update(job_id, **fields)

    def finish(self, job_id: str, version: str | None, message: str) -> None:
        """The job ran: ``version`` promoted (or None: the current model was kept)."""
        self.update(job_id, state="done", progress=1.0, message=message, version=version or "")

    def fail(self, job_id: str, message: str) -> None:
        """The job could not run to the end."""
        self.update(job_id, state="failed", message=message[:500])

    def heartbeat(self) -> None:
        """Say a trainer is taking requests (for the next :data:`TRAINER_TTL_SECONDS` s)."""
        self.redis.set(TRAINER_KEY, str(time.time()), ex=TRAINER_TTL_SECONDS)

    def trainer_listening(self) -> bool:
        """A trainer took requests in the last :data:`TRAINER_TTL_SECONDS` seconds."""
        return bool(self.redis.exists(TRAINER_KEY))

    def _job(self, job_id: str, fields: dict[str, Any]) -> TrainJob:
        state = str(fields.get("state", "queued"))
        if state in ("queued", "running"):
            # Past RUNNING_TTL_SECONDS without news (a trainer killed mid-run): say so.
            updated = float(fields.get("updated_at", 0) or 0)
            if time.time() - updated > RUNNING_TTL_SECONDS:
                state, fields = "failed", {**fields, "message": "the trainer stopped answering"}
        return TrainJob(
            job_id=job_id,
            site_id=int(fields["site_id"]),
            state=state,
            progress=float(fields.get("progress", 0) or 0),
            message=str(fields.get("message", "")),
            requested_by=str(fields.get("requested_by", "")),
            requested_at=float(fields.get("requested_at", 0) or 0),
            updated_at=float(fields.get("updated_at", 0) or 0),
            version=str(fields.get("version", "")),
        )
