"""gunicorn settings: workers, worker class and timeouts for the run command and production.

``GUNICORN_CMD_ARGS`` overrides them.

Workers: two per core (``ECRM_WEB_WORKERS``), chosen by measurement (bench/serve.py,
bench/ingest.py; figures in bench/RESULTS.md). On 2 cores, 2 and 4 sync workers are within this
machine's noise of each other on recommendation throughput, and 4 keep the shorter tail; 8 halve
each process's cache hit rate. The collector is also fastest with two workers per core.

Worker class (``ECRM_WEB_WORKER_CLASS``), chosen with bench/slow_clients.py:

- ``gevent`` (the default, what ``make run`` serves): a connection costs a greenlet, so clients
  sending a byte a second hold no worker; headers must arrive within ``keepalive`` seconds.
  psycopg 3 and redis-py wait cooperatively under gevent; SQLite calls and numpy block the
  process while they run, as they do in a sync worker.
- ``sync``: one request at a time per process. Only behind a proxy that buffers whole requests
  (deploy/nginx/ecrm.conf, the production setup in the README): alone, four slow clients stall
  every worker.
- ``gthread``: threads (``ECRM_WEB_THREADS`` per worker); a slow client holds a thread.

Every class answers gunicorn's own refusals (414, 431, malformed requests) in the API's JSON
shape (webapp/gunicorn_workers.py).
"""

import multiprocessing
import os
from pathlib import Path

_CLASSES = {
    "sync": "webapp.gunicorn_workers.SyncWorker",
    "gthread": "webapp.gunicorn_workers.ThreadWorker",
    "gevent": "webapp.gunicorn_workers.GeventWorker",
}
_kind = os.environ.get("ECRM_WEB_WORKER_CLASS", "gevent")
if _kind not in _CLASSES:
    raise SystemExit(f"ECRM_WEB_WORKER_CLASS={_kind!r}: use one of {', '.join(_CLASSES)}")

workers = int(os.environ.get("ECRM_WEB_WORKERS", multiprocessing.cpu_count() * 2))
worker_class = _CLASSES[_kind]
threads = int(os.environ.get("ECRM_WEB_THREADS", 32)) if _kind == "gthread" else 1
worker_connections = 1000
timeout = 30
graceful_timeout = 20
keepalive = 5
backlog = 2048
accesslog = None
errorlog = "-"
loglevel = "info"

# gunicorn's control socket defaults to $HOME/.gunicorn/gunicorn.ctl, one path shared by every
# gunicorn of the user; keep ours with the rest of this deployment's files.
_var_dir = Path(os.environ.get("ECRM_VAR_DIR") or Path(__file__).resolve().parent.parent / "var")
control_socket = str(_var_dir / "gunicorn.ctl")
