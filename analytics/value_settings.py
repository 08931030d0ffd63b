"""A site's customer value settings: the seed's RFM thresholds and the VIP rule, stored per site.

:class:`ValueSettings` is what the refresh (analytics.value) scores with; :func:`load` reads a
site's row of ``value_settings`` (the defaults, today's behaviour, when it has none) and
:func:`save` writes it. :func:`from_form` reads the console's form, every bad value an error
under its form field, so nothing half-checked is ever stored. No Flask here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from analytics import rfm
from analytics.value_schema import value_settings

VIP_BY = {"clv": "lifetime value", "money": "net revenue so far"}
# The form's fields: the seed's pairs (for a 3, for a 2) and the VIP rule.
PAIRS = {
    "recency_months": ("recency_3", "recency_2"),
    "frequency_orders": ("frequency_3", "frequency_2"),
    "money": ("money_3", "money_2"),
}


@dataclass(frozen=True)
class ValueSettings:
    """A site's settings for the refresh; thresholds are in the site's own currency."""

    thresholds: rfm.SeedThresholds = field(default_factory=rfm.SeedThresholds)
    vip_by: str = "clv"  # or "money": lifetime value, or net revenue so far
    vip_share: float = 0.2  # the top share of customers that are VIPs
    horizon_weeks: float = 52.0
    annual_discount: float = 0.10

    def __post_init__(self) -> None:
        if self.vip_by not in VIP_BY:
            raise rfm.ThresholdError("vip_by", "must be 'clv' or 'money'")
        if not 0 < self.vip_share <= 1:
            raise rfm.ThresholdError("vip_share", "must be above 0 and at most 1")
        if not 4 <= self.horizon_weeks <= 520:
            raise rfm.ThresholdError("horizon_weeks", "must be between 4 and 520 weeks")
        if not 0 <= self.annual_discount < 1:
            raise rfm.ThresholdError("annual_discount", "must be at least 0 and below 1")

    def as_json(self) -> dict:
        data = asdict(self)
        data["thresholds"] = {k: list(v) for k, v in data["thresholds"].items()}
        return data

    @classmethod
    def from_json(cls, data: dict) -> ValueSettings:
        """Settings from :meth:`as_json`'s dict (a stored row)."""
        known = {"vip_by", "vip_share", "horizon_weeks", "annual_discount"}
        return cls(
            thresholds=rfm.SeedThresholds.from_dict(data.get("thresholds", {})),
            **{k: v for k, v in data.items() if k in known},
        )


class SettingsErrors(Exception):
    """The form's values that cannot be settings: form field name -> reason."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(", ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _number(form: Mapping[str, str], name: str, errors: dict[str, str]) -> float | None:
    text = (form.get(name) or "").strip()
    if not text:
        errors[name] = "give a number"
        return None
    try:
        value = float(text)
    except ValueError:
        errors[name] = "must be a number"
        return None
    if value != value or value in (float("inf"), float("-inf")):
        errors[name] = "must be a finite number"
        return None
    if value < 0:
        errors[name] = "must not be negative"
        return None
    return value


def from_form(form: Mapping[str, str]) -> ValueSettings:
    """Settings from the console's form (the VIP share and discount in percent).

    Raises :class:`SettingsErrors` naming each form field that is wrong; a pair out of order is
    an error on its first field ("recency_3" for recency, and so on).
    """
    errors: dict[str, str] = {}
    pairs = {}
    for setting, names in PAIRS.items():
        values = [_number(form, name, errors) for name in names]
        pairs[setting] = tuple(values)
    numbers = {
        name: _number(form, name, errors) for name in ("vip_share", "horizon_weeks", "discount")
    }
    vip_by = form.get("vip_by", "")
    if vip_by not in VIP_BY:
        errors["vip_by"] = "choose lifetime value or net revenue"
    if errors:
        raise SettingsErrors(errors)
    try:
        thresholds = rfm.SeedThresholds(**pairs)
    except rfm.ThresholdError as e:
        raise SettingsErrors({PAIRS[e.field][0]: e.reason}) from None
    checks = {
        "vip_share": "must be above 0 and at most 100 (percent of customers)",
        "horizon_weeks": "must be between 4 and 520 weeks",
        "discount": "must be at least 0 and below 100 (percent a year)",
    }
    try:
        return ValueSettings(
            thresholds=thresholds,
            vip_by=vip_by,
            vip_share=numbers["vip_share"] / 100,
            horizon_weeks=numbers["horizon_weeks"],
            annual_discount=numbers["discount"] / 100,
        )
    except rfm.ThresholdError as e:
        name = {"annual_discount": "discount"}.get(e.field, e.field)
        raise SettingsErrors({name: checks.get(name, e.reason)}) from None


def as_form(settings: ValueSettings) -> dict[str, str]:
    """The form's fields filled with ``settings`` (inverse of :func:`from_form`)."""
    form = {}
    for setting, names in PAIRS.items():
        for name, value in zip(names, getattr(settings.thresholds, setting), strict=True):
            form[name] = f"{float(value):g}"
    form["vip_by"] = settings.vip_by
    form["vip_share"] = f"{settings.vip_share * 100:g}"
    form["horizon_weeks"] = f"{settings.horizon_weeks:g}"
    form["discount"] = f"{settings.annual_discount * 100:g}"
    return form


def load(conn_or_engine: sa.Connection | sa.Engine, site_id: int) -> ValueSettings:
    """The site's stored settings, or the defaults when it has none."""
    query = sa.select(value_settings.c.settings).where(value_settings.c.site_id == site_id)
    if isinstance(conn_or_engine, sa.Engine):
        with conn_or_engine.connect() as conn:
            stored = conn.execute(query).scalar()
    else:
        stored = conn_or_engine.execute(query).scalar()
    return ValueSettings() if stored is None else ValueSettings.from_json(stored)


def save(conn: sa.Connection, site_id: int, settings: ValueSettings, by: str | None) -> None:
    """Store the site's settings (replacing any), inside the caller's transaction."""
    row = {"settings": settings.as_json(), "updated_at": datetime.now(UTC), "updated_by": by}
    updated = conn.execute(
        sa.update(value_settings).where(value_settings.c.site_id == site_id).values(**row)
    )
    if updated.rowcount == 0:
        conn.execute(sa.insert(value_settings).values(site_id=site_id, **row))
