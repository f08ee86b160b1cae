"""The REST API's bearer token: from BACKFILL_API_TOKEN, else generated once into
`<root>/state/api-token` (loopback only), readable by its owner alone; and which addresses are
loopback.

The file is created complete or not at all (written under a private temporary name, then linked
into place, which fails if another process made it first) with mode 0600; a token file that is
not a regular file owned by us, or that its group or others may read, is refused rather than used.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..files import fsync_dir, make_dirs, temp_path
from ..settings import MIN_TOKEN_LENGTH, Settings, variable

TOKEN_VARIABLE = variable("api_token")
TokenSource = Literal["BACKFILL_API_TOKEN", "file"]
# What `backfill-pipeline api-token` suggests for reading the token again.
READ_AGAIN = "backfill-pipeline api-token"


class TokenError(Exception):
    """The token cannot be had: a token file that must not be used, or none allowed here."""


@dataclass(frozen=True)
class ApiToken:
    """The token, where it comes from, and whether this start generated it."""

    value: str
    source: TokenSource
    file: Path
    generated: bool = False


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the API on this machine: `localhost` or a loopback address.
    Any other name counts as reachable from elsewhere (it may resolve to anything)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def valid_token(text: str) -> bool:
    """At least MIN_TOKEN_LENGTH printable ASCII characters, no space (the settings' rule)."""
    return (
        len(text) >= MIN_TOKEN_LENGTH
        and text.isascii()
        and all(c.isprintable() and not c.isspace() for c in text)
    )


def read_token_file(path: Path) -> str | None:
    """The token of `path`; None when there is no such file. TokenError for a file that is not a
    regular file owned by this user, that its group or others may access, or holds no valid token."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        # ELOOP: a symbolic link, which could point anywhere.
        raise TokenError(f"cannot read the API token file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise TokenError(f"the API token file {path} is not a regular file; remove it")
        if info.st_uid != os.geteuid():
            raise TokenError(
                f"the API token file {path} belongs to user id {info.st_uid}, not to this user "
                f"({os.geteuid()}); remove it or set {TOKEN_VARIABLE}"
            )
        if info.st_mode & 0o077:
            raise TokenError(
                f"the API token file {path} may be read by others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); `chmod 600 {path}`, or remove it and restart "
                "the API to generate a new token"
            )
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    text = data.decode("ascii", errors="replace").strip()
    if not valid_token(text):
        raise TokenError(
            f"the API token file {path} holds no valid token (at least {MIN_TOKEN_LENGTH} printable "
            "ASCII characters); remove it to generate a new one"
        )
    return text


def create_token_file(path: Path) -> tuple[str, bool]:
    """(token, generated): a new token written to `path` (mode 0600) unless another process made
    the file first, whose token is then returned (checked as read_token_file checks it)."""
    make_dirs(path.parent)
    token = secrets.token_urlsafe(32)
    temp = temp_path(path)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, (token + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        # link() never replaces an existing file: the first process to get here wins.
        os.link(temp, path)
    except FileExistsError:
        existing = read_token_file(path)
        if existing is None:  # removed in between: try once more
            return create_token_file(path)
        return existing, False
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return token, True


def server_token(settings: Settings, host: str) -> ApiToken:
    """The token the API on `host` requires: BACKFILL_API_TOKEN, else (on loopback only) the
    token file, generated on first use. TokenError when off loopback without the variable, or
    for a token file that must not be used."""
    file = settings.root.api_token
    if settings.api_token is not None:
        return ApiToken(settings.api_token.get_secret_value(), "BACKFILL_API_TOKEN", file)
    if not is_loopback(host):
        raise TokenError(
            f"listening on {host} (not loopback) needs {TOKEN_VARIABLE} set: generate one with "
            f"`python -c 'import secrets; print(secrets.token_urlsafe(32))'` and give it to the "
            "API's clients (the generated token file is for loopback only)"
        )
    existing = read_token_file(file)
    if existing is not None:
        return ApiToken(existing, "file", file)
    value, generated = create_token_file(file)
    return ApiToken(value, "file", file, generated=generated)


def client_token(settings: Settings) -> ApiToken | None:
    """The token a client of the API sends: BACKFILL_API_TOKEN, else the token file (checked);
    None when neither exists yet."""
    file = settings.root.api_token
    if settings.api_token is not None:
        return ApiToken(settings.api_token.get_secret_value(), "BACKFILL_API_TOKEN", file)
    existing = read_token_file(file)
    return None if existing is None else ApiToken(existing, "file", file)
