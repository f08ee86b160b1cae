"""The API's token (issue 10, point 3): BACKFILL_API_TOKEN, else generated once into
`<root>/state/api-token` with mode 0600, created whole or not at all; a token file others may read,
or not ours, or not a regular file, is refused with a clear error; off loopback only the variable
will do."""

from __future__ import annotations

import os
import stat
import threading

import pytest
from conftest import settings

from backfill_pipeline.api import auth
from backfill_pipeline.api.auth import (
    TokenError,
    client_token,
    create_token_file,
    is_loopback,
    read_token_file,
    server_token,
)

GOOD = "a-token-from-the-environment-0123"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.org", False),
        ("localhost.example.org", False),
        ("", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_a_token_is_generated_once_with_mode_0600_whatever_the_umask(tmp_path):
    path = tmp_path / "state" / "api-token"
    old = os.umask(0)
    try:
        token, generated = create_token_file(path)
    finally:
        os.umask(old)
    assert generated and len(token) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == token + "\n"
    assert read_token_file(path) == token
    # No temporary file is left beside it.
    assert [p.name for p in path.parent.iterdir()] == ["api-token"]
    again, generated = create_token_file(path)
    assert (again, generated) == (token, False)


def test_racing_starts_agree_on_one_token(tmp_path):
    path = tmp_path / "api-token"
    results: list[tuple[str, bool]] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        results.append(create_token_file(path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({token for token, _ in results}) == 1
    assert sum(generated for _, generated in results) == 1


def test_a_token_file_others_may_read_is_refused(tmp_path):
    path = tmp_path / "api-token"
    path.write_text(GOOD)
    for mode in (0o644, 0o640, 0o604, 0o620, 0o660):
        path.chmod(mode)
        with pytest.raises(TokenError, match=rf"may be read by others \(mode 0{mode:o}\).*chmod 600"):
            read_token_file(path)
    path.chmod(0o600)
    assert read_token_file(path) == GOOD


def test_a_token_file_of_another_user_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "api-token"
    path.write_text(GOOD)
    path.chmod(0o600)
    monkeypatch.setattr(auth.os, "geteuid", lambda: os.stat(path).st_uid + 1)
    with pytest.raises(TokenError, match="belongs to user id .* not to this user"):
        read_token_file(path)


def test_a_link_a_directory_or_a_bad_token_is_refused(tmp_path):
    real = tmp_path / "elsewhere"
    real.write_text(GOOD)
    real.chmod(0o600)
    link = tmp_path / "api-token"
    link.symlink_to(real)
    with pytest.raises(TokenError, match="cannot read the API token file"):
        read_token_file(link)
    link.unlink()
    link.mkdir()
    with pytest.raises(TokenError, match="not a regular file"):
        read_token_file(link)
    link.rmdir()
    for content in ("", "short-secret", "has a space in it 0123456789", "\u00e9" * 20):
        link.write_text(content)
        link.chmod(0o600)
        with pytest.raises(TokenError, match="holds no valid token") as refused:
            read_token_file(link)
        # The message never shows what the file holds.
        assert not content or content not in str(refused.value)


def test_the_variable_wins_and_the_file_serves_loopback_only(tmp_path):
    root = tmp_path / "data"
    from_env = server_token(settings(data_root=root, api_token=GOOD), "0.0.0.0")
    assert (from_env.value, from_env.source, from_env.generated) == (GOOD, "BACKFILL_API_TOKEN", False)
    assert not (root / "state" / "api-token").exists()
    with pytest.raises(TokenError, match="BACKFILL_API_TOKEN"):
        server_token(settings(data_root=root), "0.0.0.0")
    assert not (root / "state" / "api-token").exists()
    first = server_token(settings(data_root=root), "127.0.0.1")
    assert first.generated and first.source == "file" and first.file == root / "state" / "api-token"
    second = server_token(settings(data_root=root), "localhost")
    assert (second.value, second.generated) == (first.value, False)


def test_the_client_reads_the_same_token(tmp_path):
    root = tmp_path / "data"
    assert client_token(settings(data_root=root)) is None
    made = server_token(settings(data_root=root), "127.0.0.1")
    read = client_token(settings(data_root=root))
    assert read is not None and read.value == made.value and read.source == "file"
    assert client_token(settings(data_root=root, api_token=GOOD)).value == GOOD
    (root / "state" / "api-token").chmod(0o644)
    with pytest.raises(TokenError):
        client_token(settings(data_root=root))
