"""What customers did: events, identities, customers, orders and the catalogue."""

import logging

log = logging.getLogger("ecrm.tracking")
