"""The WSGI entry point: the app that gunicorn and ``flask --app wsgi`` serve."""

from webapp import create_app

app = create_app()
