"""The demo shop's pages under /demo/ (blueprint ``bp``); the data they show comes from demo/.

A small store that uses the tracker as a customer's site would: ``base`` holds the blueprint,
its guards and shared helpers, ``pages`` the browsing, ``cart`` the cart, checkout and orders,
``signin`` signing in and out; the templates are in ``templates/demo/``.
"""

from webapp.demo_shop import cart, pages, signin  # noqa: F401  (their routes register on bp)
from webapp.demo_shop.base import bp

__all__ = ["bp"]
