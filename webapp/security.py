"""Security headers: the one every answer gets, and the stricter ones of HTML pages.

Every answer says no MIME sniffing; HTML pages also get a Content-Security-Policy, no framing
and a referrer policy.

Pages that need more than the default policy (the demo shop runs the tracker and the widget)
set their own ``Content-Security-Policy``; this hook only fills in what a response lacks.
"""

from __future__ import annotations

from flask import Response

# Pages with no scripts at all (the landing page, error pages): only our own styles and images.
DEFAULT_PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
REFERRER_POLICY = "strict-origin-when-cross-origin"
# Documents a browser could render and run (SVG can hold scripts too).
PAGE_TYPES = ("text/html", "image/svg+xml")


def security_headers(response: Response) -> Response:
    """Add the headers the response lacks (an ``after_request`` hook for the whole app)."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.mimetype in PAGE_TYPES:
        headers.setdefault("Content-Security-Policy", DEFAULT_PAGE_CSP)
        headers.setdefault("Referrer-Policy", REFERRER_POLICY)
        headers.setdefault("X-Frame-Options", "DENY")  # frame-ancestors for older browsers
    return response
