"""Which model version a process's site state was loaded from, and the erased rows applied.

:class:`ModelWatch` is the bookkeeping of :class:`~recommender.site_state.SiteStates`: per site,
the registry link last handled, a link that did not load (tried again only when its folder is
replaced, as recommender.forget swaps a rewritten version in), and the stamp of the version's
``forgotten.json`` last applied (recommender.forgotten: erased customers' rows, blanked in the
model held, in place, never by reloading it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from recommender import forgotten

if TYPE_CHECKING:
    from recommender.answers import ModelBundle

log = logging.getLogger("ecrm.recommender.serving")


class ModelWatch:
    """Per site: the link loaded, a link that failed, the erased rows' list applied."""

    def __init__(self, root_of: Callable[[int], Path]):
        self.root_of = root_of  # a site's registry folder
        self.links: dict[int, str | None] = {}
        self.failed: dict[int, tuple[str, int | None]] = {}
        self.stamps: dict[int, tuple | None] = {}

    def _inode(self, site_id: int, version: str) -> int | None:
        try:
            return os.stat(self.root_of(site_id) / version).st_ino
        except OSError:
            return None

    def moved(self, site_id: int, link: str | None) -> bool:
        """The current link names another version than the one loaded, not already tried in
        the same folder."""
        if link == self.links.get(site_id):
            return False
        failed = self.failed.get(site_id)
        return failed is None or failed != (link, self._inode(site_id, link))

    def tried(self, site_id: int, link: str | None, bundle: ModelBundle | None) -> None:
        """``link`` was loaded as ``bundle``: its erased rows are blanked in it; or it did not
        load (None): not tried again until its folder is replaced."""
        if bundle is not None:
            self.apply_forgotten(site_id, bundle, loaded=True)
        elif link is not None:
            self.failed[site_id] = (link, self._inode(site_id, link))

    def handled(self, site_id: int, link: str | None) -> None:
        """The state now reflects ``link`` (unless it is the link that failed)."""
        failed = self.failed.get(site_id)
        if failed is not None and failed[0] == link:
            self.links.setdefault(site_id, None)
            return
        self.failed.pop(site_id, None)
        self.links[site_id] = link

    def apply_forgotten(self, site_id: int, bundle: ModelBundle, loaded: bool = False) -> int:
        """Blank the rows erased from ``bundle``'s version in it, in place, when the list
        changed since last applied (always for a bundle just ``loaded``); rows blanked."""
        folder = self.root_of(site_id) / bundle.version
        found = forgotten.stamp(folder)  # before reading: a change after it is seen next time
        if not loaded and found == self.stamps.get(site_id):
            return 0
        rows, _ = forgotten.read(folder)
        blanked = forgotten.blank_bundle(bundle, rows)
        self.stamps[site_id] = found
        if blanked:
            log.info(
                "site %s: %d erased row(s) blanked in model %s",
                site_id,
                len(blanked),
                bundle.version,
            )
        return len(blanked)
