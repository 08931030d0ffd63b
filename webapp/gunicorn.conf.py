"""gunicorn settings used by the run command (override with GUNICORN_CMD_ARGS)."""

import multiprocessing
import os

# Sync workers: each request is short (validate, one XADD). Two per core keeps both cores busy
# while a worker waits on Redis; see bench/RESULTS.md for the measurement behind the choice.
workers = int(os.environ.get("ECRM_WEB_WORKERS", multiprocessing.cpu_count() * 2))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
backlog = 2048
accesslog = None
errorlog = "-"
loglevel = "info"
