"""gunicorn settings used by the run command (override with GUNICORN_CMD_ARGS).

Sync workers, two per core, chosen by measurement (bench/serve.py, bench/ingest.py; figures in
bench/RESULTS.md). On 2 cores: 4 sync workers kept the recommendation API's p99 within 2x of a
bare Flask route at the best throughput; 2 workers gave slightly more throughput but a longer
tail (a worker waiting on Redis leaves its core idle), 8 workers halved each process's cache hit
rate, and gthread workers (2 x 4 threads) contend for the GIL under load. The collector is also
fastest with two sync workers per core.
"""

import multiprocessing
import os

workers = int(os.environ.get("ECRM_WEB_WORKERS", multiprocessing.cpu_count() * 2))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
backlog = 2048
accesslog = None
errorlog = "-"
loglevel = "info"
