"""The signed-in customer's choices: communication preferences and privacy.

``/account/preferences`` is the channel x topic grid of opt-ins (:mod:`accounts.preferences`);
``/account/privacy`` turns personalisation on or off (:mod:`accounts.privacy`), lists their
tracking and personalisation consent records and shows "why am I seeing these
recommendations": the answer the recommendation API gives them, from the same serving layer.

Every change is a consent record with the words the customer saw, in the language they saw
them in: the form carries the page's locale (``shown_locale``) and the words are made again
under it when the form comes back, never taken from the form.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import g, redirect, render_template, request, url_for
from flask_babel import force_locale
from flask_babel import gettext as _

from accounts import consent, preferences, privacy
from accounts.portal_sessions import LOCALES
from recommender.serving import PERSONALISATION_OFF
from webapp.clients import clients
from webapp.portal import bp, customer_required
from webapp.recommend import serving

RECOMMENDATIONS_SHOWN = 10
PLACEMENT = "default"  # the placement the widget asks for unless a page names another


def _me() -> tuple[int, str]:
    return g.customer.site_id, g.customer.user_id


def channel_label(channel: str) -> str:
    """A channel's name in the page's language."""
    return {"email": _("Email"), "sms": _("SMS"), "push": _("Push notifications")}.get(
        channel, channel
    )


def topic_label(label: str) -> str:
    """A topic's label in the page's language (the default topics are in the catalogue; a
    site's own labels are shown as the site wrote them)."""
    return _(label)


def grid_statement() -> str:
    """The sentence above the grid: what ticking a box means."""
    return _(
        "Tick a box to agree that we may write to you on that channel about that topic; "
        "clear it and we stop."
    )


def box_wording(channel: str, label: str) -> str:
    """The words one box stands for, as the page shows them: the statement and its labels."""
    return f"{grid_statement()} {channel_label(channel)}: {topic_label(label)}"


def _shown_locale() -> str | None:
    """The locale the form was shown in (None when the form names none we speak)."""
    shown = request.form.get("shown_locale", "")
    return shown if shown in LOCALES else None


def _preferences_page(errors: dict[str, str], status: int = 200, saved: bool = False):
    site_id, user_id = _me()
    with clients().engine.connect() as conn:
        found = preferences.get_preferences(conn, site_id, user_id)
        history = consent.history(conn, site_id, user_id, whats=[p.what for p in found])
    topics: dict[str, str] = {}
    for p in found:
        topics.setdefault(p.topic, p.label)
    page = render_template(
        "portal/preferences.html",
        grid={p.what: p for p in found},
        channels=preferences.CHANNELS,
        topics=topics,
        records=history,
        labels={p.what: (channel_label(p.channel), topic_label(p.label)) for p in found},
        channel_label=channel_label,
        topic_label=topic_label,
        statement=grid_statement(),
        errors=errors,
        saved=saved,
    )
    return page, status


@bp.route("/preferences", methods=["GET", "POST"])
@customer_required
def preferences_page():
    """Which channels may carry which topics to the customer; the history of their choices."""
    if request.method == "GET":
        return _preferences_page({}, saved=request.args.get("saved") == "1")
    site_id, user_id = _me()
    shown = _shown_locale()
    if shown is None:
        problem = _("This form is out of date. Check your choices and save again.")
        return _preferences_page({"form": problem}, 400)
    with clients().engine.connect() as conn:
        found = preferences.get_preferences(conn, site_id, user_id)
    known = {p.what: p for p in found}
    for key, value in request.form.items(multi=True):
        if key in ("csrf_token", "shown_locale"):
            continue
        if key not in known:
            problem = _("This form is out of date. Check your choices and save again.")
            return _preferences_page({"form": problem}, 400)
        if value != "1":
            return _preferences_page({key: _("Tick the box or clear it.")}, 400)
    changes = {what: request.form.get(what) == "1" for what in known}
    with force_locale(shown):
        wording = {what: box_wording(p.channel, p.label) for what, p in known.items()}
    with clients().engine.begin() as conn:
        preferences.set_preferences(
            conn, site_id, user_id, changes, source="portal", wording=wording
        )
    return redirect(url_for("portal.preferences_page", saved=1), 303)


# -- privacy ------------------------------------------------------------------------------------


def personalisation_wording(enabled: bool) -> str:
    """The sentence beside the button that turns personalisation on (or off)."""
    if enabled:
        return _("Recommend products to me based on what I view and buy.")
    return _(
        "Do not use what I view and buy to recommend products to me; show me popular items instead."
    )


def source_explanation(source: str) -> str:
    """What the recommendation API's ``source`` means, in the page's language."""
    return {
        "personal": _("Picked for you from what you viewed and bought."),
        "similar_customers": _("What customers with tastes like yours bought."),
        PERSONALISATION_OFF: _(
            "Personalisation is off: you get the shop's popular items, the same as everyone."
        ),
        "popular": _("The shop's popular items: we know too little about you to pick for you."),
        "trending": _("What is popular this week: we know too little about you to pick for you."),
        "fallback": _("New in the shop: there is no recommendation model yet."),
    }.get(source, _("Items chosen by the shop."))


def current_recommendations(site_id: int, user_id: str) -> dict[str, Any]:
    """The body the recommendation API would answer for this customer (no ``rec_id``: a page
    view is not an impression and is not counted)."""
    answer = serving().recommend(
        site_id, user_id=user_id, n=RECOMMENDATIONS_SHOWN, placement=PLACEMENT
    )
    return orjson.loads(answer.body)


def _privacy_page(errors: dict[str, str], status: int = 200, saved: bool = False):
    site_id, user_id = _me()
    with clients().engine.connect() as conn:
        enabled = privacy.personalisation_enabled(conn, site_id, user_id)
        tracking = consent.history(conn, site_id, user_id, whats=[consent.TRACKING])
        personalisation = consent.history(conn, site_id, user_id, whats=[consent.PERSONALISATION])
    shown = current_recommendations(site_id, user_id)
    page = render_template(
        "portal/privacy.html",
        enabled=enabled,
        wording=personalisation_wording(not enabled),
        tracking=tracking,
        personalisation=personalisation,
        recommendations=shown,
        explanation=source_explanation(shown.get("source", "")),
        errors=errors,
        saved=saved,
    )
    return page, status


@bp.route("/privacy", methods=["GET", "POST"])
@customer_required
def privacy_page():
    """Personalisation on or off, the consent records behind it, and why these recommendations."""
    if request.method == "GET":
        return _privacy_page({}, saved=request.args.get("saved") == "1")
    choice = request.form.get("personalisation", "")
    if choice not in ("on", "off"):
        return _privacy_page({"personalisation": _("Choose on or off.")}, 400)
    shown = _shown_locale()
    if shown is None:
        problem = _("This form is out of date. Check your choices and save again.")
        return _privacy_page({"personalisation": problem}, 400)
    enabled = choice == "on"
    with force_locale(shown):
        wording = personalisation_wording(enabled)
    site_id, user_id = _me()
    with clients().engine.begin() as conn:
        privacy.set_personalisation(
            conn,
            site_id,
            user_id,
            enabled,
            source="portal",
            wording=wording,
            redis_client=clients().redis,
        )
    # This process serves the next page: it need not wait for its own message on the channel.
    serving().sites.note_opt_out(site_id, user_id, personalised=enabled)
    return redirect(url_for("portal.privacy_page", saved=1), 303)
