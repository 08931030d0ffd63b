"""The benchmarks' shared harness: the machine, the service under test, the load, RESULTS.md.

- ``machine``: CPU model and cores, per-process CPU accounting from /proc, waiting for other
  processes to go quiet, priorities, finding tools (wrk, py-spy, redis-benchmark).
- ``service``: free ports, the embedded Redis and SQL store with a site, gunicorn with a code
  tree's own ``webapp/gunicorn.conf.py``, and an older commit's code tree (``git archive``).
- ``load``: wrk runs with a lua script that prints a ``BENCH_JSON`` summary, interleaved rounds.
- ``results``: a benchmark's section of bench/RESULTS.md with the standard header lines and the
  same-run comparison table against a baseline commit.

The benchmarks run as scripts (``python bench/x.py``) with the project root on ``sys.path``, so
they import this package as ``bench.harness``.
"""
