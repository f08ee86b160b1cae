"""`backfill-pipeline api-token`: the REST API's bearer token, for its clients (`curl -H
"Authorization: Bearer $(backfill-pipeline api-token)"`)."""

from __future__ import annotations

import click

from .common import CliError, json_option, load, print_json, root_option
from .exit_codes import ExitCode


@click.command("api-token")
@root_option
@json_option
def api_token(root: str | None, as_json: bool) -> None:
    """Print the REST API's bearer token (BACKFILL_API_TOKEN, or the generated one)."""
    from ..api.auth import TOKEN_VARIABLE, TokenError, client_token

    settings = load({"data_root": "--root"}, data_root=root)
    file = settings.root.api_token
    try:
        token = client_token(settings)
    except TokenError as exc:
        raise CliError(str(exc), ExitCode.BAD_INPUT) from None
    if as_json:
        print_json(
            {
                "token": token.value if token else None,
                "source": token.source if token else None,
                "file": str(file),
            }
        )
    elif token is not None:
        click.echo(token.value)
    if token is None:
        # No token yet: a script reading it must not carry on with an empty one.
        raise CliError(
            f"no API token yet: `backfill-pipeline api` generates one into {file} on its first "
            f"start on loopback, or set {TOKEN_VARIABLE}",
            ExitCode.FAILED,
        )
