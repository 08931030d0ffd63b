"""The app as the serving benchmark runs it: ``wsgi.py`` plus one bare route, the ceiling.

``GET /bench/bare`` returns a constant JSON body (a real recommendation response captured by
bench/serve.py, file named by ECRM_BENCH_BARE_BODY) from the same gunicorn processes, so both are
measured in the same configuration and run.
"""

from __future__ import annotations

import os
from pathlib import Path

from webapp import create_app

app = create_app()
BARE_BODY = Path(os.environ.get("ECRM_BENCH_BARE_BODY", "/dev/null")).read_bytes() or b"{}"


@app.get("/bench/bare")
def bare():
    """The framework's ceiling: routing, a constant body, no work."""
    return app.response_class(BARE_BODY, mimetype="application/json")
