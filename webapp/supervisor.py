"""The run command: everything on one machine, stopped cleanly by Ctrl-C.

``python -m webapp.supervisor`` (what ``make run`` calls) starts the embedded Redis unless
ECRM_REDIS_URL is set, migrates the SQL store, loads the demo shop and makes its console owner
(printing a one-time sign-in link) the first time, then runs gunicorn, one ingest worker, the
trainer, the scheduler and the mailer (emails and webhooks), restarting those that crash.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from threadpoolctl import threadpool_limits

from accounts.links import issue_link, link_url
from accounts.mailer import describe_smtp
from accounts.staff import create_staff, list_staff
from demo.load import demo_site, load_demo
from tracking.redis_server import EmbeddedRedis
from tracking.text import plural
from webapp import database
from webapp.clients import clients
from webapp.config import PROJECT_ROOT, load_config

demo_cli = AppGroup("demo", help="The generated demo shop.")
DEMO_OWNER = "owner@demo.example"  # the demo shop's owner, made by the first start


@demo_cli.command("load")
@click.option("--origin", "origins", multiple=True, default=["http://127.0.0.1:8000"])
@click.option("--customers", default=500, show_default=True)
def demo_load(origins, customers):
    """Create the demo site and queue its generated events for the ingest worker."""
    c = clients()
    if demo_site(c.engine) is not None:
        raise click.ClickException("the demo shop exists already")
    site, server_key, shop, queued = load_demo(
        c.engine, c.redis, current_app.config["STREAM_KEY"], list(origins), customers
    )
    n_items = len(shop.items)
    click.echo(f"demo shop: {plural(n_items, 'item')}, {plural(queued, 'event')} queued for ingest")
    click.echo(f"write key: {site.write_key}\nserver key: {server_key}")


def first_demo_model(app: Flask, site, shop) -> None:
    """Train the new demo shop's first model from the events just generated, untuned.

    Storing the demo's events takes the ingest worker most of the start-up (10-20 s on 2 busy
    cores); this model waits for none of it (it reads the events the worker is storing, stitched
    the same way), so the demo widget has recommendations a few seconds after start. The
    scheduled trainer retrains from the store as soon as the events are in.
    """
    from recommender.event_frames import frame_from_segment
    from webapp.train_cli import train_site

    try:
        with app.app_context(), threadpool_limits(limits=1, user_api="blas"):
            train_site(site, 0.0, frame=frame_from_segment(shop.events))
    except Exception as e:  # the scheduled trainer still trains; the run goes on
        print(f"the demo's first model failed ({e}); the trainer will train one", flush=True)


def trainer_argv(python: str, config: dict) -> list[str]:
    """The scheduled trainer: a fast first model, then tuned ones, with attribution repaired.

    The first run starts as soon as the ingest worker has stored the queued events and skips
    the search (a few seconds of fitting on the demo instead of the tuning budget); later runs
    tune. Each run also repairs the attributions that concurrent ingest transactions can miss
    (``attribute_since``). Between runs it trains the sites the console asks for ("train
    now"); with scheduled training off it does only that.
    """
    flask = [python, "-m", "flask", "--app", "wsgi", "train"]
    if config["TRAIN_INTERVAL_MINUTES"] <= 0:
        return [*flask, "--only-requests", "--tune-seconds", str(config["TRAIN_TUNE_SECONDS"])]
    return [
        *flask,
        *["--every", str(config["TRAIN_INTERVAL_MINUTES"]), "--after-ingest", "--take-requests"],
        *["--first-tune-seconds", "0", "--tune-seconds", str(config["TRAIN_TUNE_SECONDS"])],
        *["--attribute-days", str(config["ATTRIBUTION_WINDOW_DAYS"])],
    ]


def console_lines(config: dict, console_link: str | None, owner: str | None) -> list[str]:
    """The console's lines of the banner: a one-time sign-in link, or how to get a new one."""
    if console_link:
        return [
            f"  console:    {console_link}",
            f"              (sign-in link for {owner}: works once, for 24 h; choose a password)",
        ]
    return [
        f"  console:    {config.get('PUBLIC_URL') or 'http://' + config['BIND']}/console/",
        "              a new sign-in link: "
        f".venv/bin/flask --app wsgi users link {owner or 'EMAIL'}",
    ]


def banner(
    config: dict,
    write_key: str | None,
    server_key: str | None,
    console_link: str | None = None,
    owner: str | None = None,
) -> str:
    """What ``make run`` prints once everything is started, ``export`` lines included."""
    base = f"http://{config['BIND']}"
    mail_dir = config.get("MAIL_DIR") or Path(config["VAR_DIR"]) / "mail"
    lines = [
        "",
        "  eCRM is running",
        *console_lines(config, console_link, owner),
        f"  collector:  {base}/v1/batch",
        f"  recommend:  {base}/v1/recommendations",
        f"  API docs:   {base}/docs  ({base}/v1/openapi.json)",
        f"  health:     {base}/healthz  {base}/readyz",
        f"  demo shop:  {base}/demo/",
        "  training:   "
        + (
            ("a first model now, again " if server_key else "")
            + "once the worker has stored the queued events, then every "
            + f"{config['TRAIN_INTERVAL_MINUTES']:g} min (var/models/)"
            if config["TRAIN_INTERVAL_MINUTES"] > 0
            else "off (ECRM_TRAIN_INTERVAL_MINUTES=0) but for the console's Train now"
        ),
        f"  data:       {config['VAR_DIR']}",
        f"  mail:       {describe_smtp(config.get('SMTP_URL'), mail_dir)}",
    ]
    if write_key:
        lines += ["", "  For the README's curl examples, paste into your shell:", ""]
        lines.append(f"    export WRITE_KEY={write_key}")
        if server_key:
            lines.append(f"    export SERVER_KEY={server_key}")
            lines += [
                "",
                "  The server key is secret and shown only this once: keep it in your backend's",
                "  secrets. Lost it? Make a new one (the old one stops working):",
            ]
        else:
            lines += [
                "",
                "  The server key was shown on the first start only. Lost it? Make a new one",
                "  (the old one stops working):",
            ]
        lines.append(f"    .venv/bin/flask --app wsgi sites rotate-key {write_key} --server")
    else:
        lines.append("  no demo site: `.venv/bin/flask --app wsgi sites create NAME` makes a site")
    lines += ["", "  Ctrl-C stops everything.", ""]
    return "\n".join(lines)


class Supervisor:
    """Starts the processes in order and stops them in reverse order."""

    def __init__(self, with_demo: bool = True):
        self.with_demo = with_demo
        self.children: dict[str, subprocess.Popen] = {}
        self.redis: EmbeddedRedis | None = None
        self.first_model: threading.Thread | None = None
        self.stopping = False
        self.env = dict(os.environ)
        # implicit runs its own threads; a threaded BLAS underneath only slows it down.
        self.env.setdefault("OPENBLAS_NUM_THREADS", "1")

    def prepare(self) -> tuple[dict, Flask]:
        """Config, secret, Redis and schema; returns (config, app)."""
        config = load_config({"SECRET_KEY": self._secret_key()})
        self.env["ECRM_SECRET_KEY"] = config["SECRET_KEY"]
        if not config["REDIS_URL"]:
            self.redis = EmbeddedRedis(
                Path(config["VAR_DIR"]) / "redis", config["REDIS_APPENDFSYNC"]
            )
            self.redis.start()
            config["REDIS_URL"] = self.redis.url
            self.env["ECRM_REDIS_URL"] = self.redis.url
        from webapp import create_app

        app = create_app(config)
        with app.app_context():
            database.upgrade(clients().engine)
        return config, app

    def demo(self, app: Flask, config: dict) -> tuple[str | None, str | None]:
        """The demo site, created and its events queued the first time: (write key, server key)."""
        with app.app_context():
            c = clients()
            site, server_key = demo_site(c.engine), None
            if site is None and self.with_demo:
                host = config["BIND"]
                origins = [f"http://{host}", f"http://localhost:{host.rsplit(':', 1)[-1]}"]
                site, server_key, shop, queued = load_demo(
                    c.engine, c.redis, config["STREAM_KEY"], origins
                )
                print(
                    f"loaded the demo shop: {plural(len(shop.items), 'item')}, "
                    f"{plural(queued, 'event')} queued",
                    flush=True,
                )
                if config["TRAIN_INTERVAL_MINUTES"] > 0:
                    self.first_model = threading.Thread(
                        target=first_demo_model, args=(app, site, shop), daemon=True
                    )
                    self.first_model.start()
        return (site.write_key if site else None), server_key

    def console_owner(self, app: Flask, config: dict) -> tuple[str | None, str | None]:
        """(a one-time sign-in link, the owner's email): the demo shop's owner, made the first time.

        Only while no staff account exists: later starts print how to get a new link instead.
        """
        with app.app_context():
            engine = clients().engine
            site = demo_site(engine)
            members = list_staff(engine)
            if members or site is None:
                owners = [m.email for m in members if "owner" in m.grants.values()]
                return None, (DEMO_OWNER if DEMO_OWNER in owners else None)
            member = create_staff(engine, DEMO_OWNER, "owner", [site.site_id])
            return link_url(config["PUBLIC_URL"], issue_link(engine, member)), DEMO_OWNER

    def _secret_key(self) -> str:
        if os.environ.get("ECRM_SECRET_KEY"):
            return os.environ["ECRM_SECRET_KEY"]
        var_dir = Path(os.environ.get("ECRM_VAR_DIR", PROJECT_ROOT / "var"))
        path = var_dir / "secret_key"
        if not path.exists():
            var_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()

    def spawn(self, name: str, argv: list[str]) -> None:
        """Start a child in its own process group (we deliver the signals, in order)."""
        self.children[name] = subprocess.Popen(
            argv, cwd=PROJECT_ROOT, env=self.env, start_new_session=True
        )

    def run(self) -> int:
        """Run until Ctrl-C or SIGTERM."""
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        config, app = self.prepare()
        python = sys.executable
        # The ingest worker starts first: its start-up (importing the app) overlaps with
        # generating the demo, and it is on the path to the first model (stored events, then
        # training), which the demo widget waits for.
        ingest = [python, "-m", "flask", "--app", "wsgi", "ingest", "--consumer", "local-1"]
        self.spawn("ingest", ingest)
        write_key, server_key = self.demo(app, config)
        console_link, owner = self.console_owner(app, config)
        gunicorn = [python, "-m", "gunicorn", "-c", str(PROJECT_ROOT / "webapp/gunicorn.conf.py")]
        self.spawn("web", [*gunicorn, "--bind", config["BIND"], "wsgi:app"])
        train = trainer_argv(python, config)
        self.spawn("trainer", train)
        # Attribution repair and rollup upkeep (webapp.scheduler); one runs across hosts.
        scheduler = [python, "-m", "flask", "--app", "wsgi", "scheduler"]
        self.spawn("scheduler", scheduler)
        # Emails from the outbox and webhooks to shops (webapp.messaging_cli).
        mailer = [python, "-m", "flask", "--app", "wsgi", "mailer"]
        self.spawn("mailer", mailer)
        commands = {"ingest": ingest, "trainer": train, "scheduler": scheduler, "mailer": mailer}
        print(banner(config, write_key, server_key, console_link, owner), flush=True)
        backoff = 1.0
        while not self.stopping:
            time.sleep(0.5)
            for name, child in list(self.children.items()):
                code = child.poll()
                if code is None or self.stopping:
                    continue
                if name == "web":
                    print(f"gunicorn exited with {code}; stopping", file=sys.stderr)
                    self.stopping = True
                    break
                # A crashed worker is restarted: its pending entries are redelivered to it.
                print(f"{name} exited with {code}; restarting in {backoff:.0f}s", file=sys.stderr)
                time.sleep(backoff)
                backoff = min(backoff * 2, 30)
                self.spawn(name, commands[name])
        self.stop()
        return 0

    def _on_signal(self, *_):
        self.stopping = True

    def stop(self) -> None:
        """Stop the web server first (no new events), then the worker, then Redis."""
        for name in ("web", "scheduler", "mailer", "trainer", "ingest"):
            child = self.children.get(name)
            if child is None or child.poll() is not None:
                continue
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if self.first_model is not None:
            # It writes to Redis (the cache) and var/models: let it finish before Redis stops.
            self.first_model.join(60)
        if self.redis is not None:
            self.redis.stop()
        print("stopped.", flush=True)


@click.command("up")
@click.option("--no-demo", is_flag=True, help="Do not create the demo shop.")
def up(no_demo):
    """Start everything (same as `make run`)."""
    raise SystemExit(Supervisor(with_demo=not no_demo).run())


if __name__ == "__main__":
    raise SystemExit(Supervisor(with_demo="--no-demo" not in sys.argv).run())
