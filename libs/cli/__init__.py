"""`medai`: the mesh's command-line tool."""
from __future__ import annotations

import typer

from libs.cli import audit, certs, client, keys

app = typer.Typer(help="MedServe mesh command-line tool.", no_args_is_help=True, add_completion=False)
app.add_typer(keys.app, name="keys")
app.add_typer(audit.app, name="audit")
app.add_typer(certs.app, name="certs")
app.command("predict")(client.predict)
app.command("models")(client.models)


def main() -> None:
    app()
