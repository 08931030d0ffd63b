"""Dead-letter commands: list, show and replay what the ingest worker could not store.

``flask --app wsgi dead-letters list | show ID | replay [ID...]``.
"""

from __future__ import annotations

import click
import orjson
from flask import current_app
from flask.cli import AppGroup

from tracking.dead_letters import get_dead_letters, list_dead_letters, replay
from webapp.clients import clients

dead_letters_cli = AppGroup(
    "dead-letters", help="Entries and events the ingest worker could not store."
)

ERROR_WIDTH = 70


def _one_line(text: str, width: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


@dead_letters_cli.command("list")
def dead_letters_list():
    """List dead letters: id, stream id, attempts, error, created."""
    letters = list_dead_letters(clients().engine)
    rows = [("id", "stream id", "attempts", "error", "created")] + [
        (
            str(letter.id),
            letter.stream_id,
            str(letter.attempts),
            _one_line(letter.error, ERROR_WIDTH),
            letter.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
        for letter in letters
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    noun = "dead letter" if len(letters) == 1 else "dead letters"
    click.echo(f"({len(letters)} {noun})")


@dead_letters_cli.command("show")
@click.argument("letter_id", type=int)
def dead_letters_show(letter_id):
    """Print one dead letter's payload (the stream entry) as indented JSON."""
    letter = get_dead_letters(clients().engine, [letter_id]).get(letter_id)
    if letter is None:
        raise click.ClickException(f"no dead letter has id {letter_id}; see `dead-letters list`")
    click.echo(orjson.dumps(letter.readable_payload(), option=orjson.OPT_INDENT_2).decode())


@dead_letters_cli.command("replay")
@click.argument("letter_ids", nargs=-1, type=int)
def dead_letters_replay(letter_ids):
    """Put dead letters back on the stream (default: all); the store skips what it has."""
    engine = clients().engine
    if letter_ids:
        found = get_dead_letters(engine, list(letter_ids))
        missing = [str(i) for i in letter_ids if i not in found]
        if missing:
            raise click.ClickException(
                f"no dead letter has id {', '.join(missing)}; nothing replayed"
            )
        letters = [found[i] for i in dict.fromkeys(letter_ids)]
    else:
        letters = list_dead_letters(engine)
    stream_key = current_app.config["STREAM_KEY"]
    try:
        done = replay(engine, clients().redis, stream_key, letters)
    except Exception as e:  # Redis down or refusing: what was not replayed stays
        raise click.ClickException(
            f"replay stopped ({type(e).__name__}: {e}); the dead letters not replayed are kept"
        ) from e
    for letter, new_id in done:
        click.echo(f"replayed {letter.id} ({letter.stream_id}) as stream entry {new_id}")
    noun = "dead letter" if len(done) == 1 else "dead letters"
    click.echo(f"{len(done)} {noun} back on {stream_key}; an ingest worker will store them")
