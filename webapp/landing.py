"""The front door: ``/`` says what runs here and links to it; ``/favicon.ico``."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, send_from_directory

from webapp.openapi.health import DOCS_PATH, JSON_PATH

bp = Blueprint("landing", __name__, template_folder="templates")


@bp.get("/")
def index():
    """A small page linking the API reference, the OpenAPI document and the demo shop."""
    return render_template("landing.html", docs_path=DOCS_PATH, json_path=JSON_PATH)


@bp.get("/favicon.ico")
def favicon():
    """The icon browsers ask for on every first load."""
    response = send_from_directory(
        current_app.static_folder, "favicon.ico", mimetype="image/vnd.microsoft.icon"
    )
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response
