"""gunicorn settings used by the run command (override with GUNICORN_CMD_ARGS).

Sync workers, two per core, chosen by measurement (bench/serve.py, bench/ingest.py; figures in
bench/RESULTS.md). On 2 cores, 2 and 4 sync workers are within this machine's noise of each other
on recommendation throughput across runs (75-86% and 78-80% of a bare Flask route), and 4 keep
the shorter tail (p99 1.0-1.4x the bare route's); 8 workers halve each process's cache hit rate
(65-71%), and gthread workers (2 x 4 threads) contend for the GIL (p99 2-4x). The collector is
also fastest with two sync workers per core.
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
