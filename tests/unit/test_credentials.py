"""The CLI's credentials file: where it lives, what it holds, and who may read it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import orjson
import pytest

from hookd import credentials
from hookd.domain import errors

KEY = "hk_0123456789abcdefghijklmnopqrstuvwxyzABCD"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "credentials.json"
    assert credentials.load("http://127.0.0.1:8000", path=path) is None

    assert credentials.save("http://127.0.0.1:8000", KEY, path=path) == path

    assert credentials.load("http://127.0.0.1:8000", path=path) == KEY
    assert credentials.load("http://127.0.0.1:8001", path=path) is None


def test_file_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "hookd" / "credentials.json"
    credentials.save("http://127.0.0.1:8000", KEY, path=path)

    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700


def test_file_stays_0600_when_rewritten_under_a_loose_umask(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    old = os.umask(0)
    try:
        credentials.save("http://127.0.0.1:8000", KEY, path=path)
        credentials.save("http://127.0.0.1:9000", "hk_other", path=path)
    finally:
        os.umask(old)
    assert mode(path) == 0o600


def test_saving_keeps_other_servers_and_replaces_the_same_one(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    credentials.save("http://127.0.0.1:8000", "hk_old", path=path)
    credentials.save("https://hookd.example.com", "hk_remote", path=path)
    credentials.save("http://localhost:8000", KEY, path=path)

    assert orjson.loads(path.read_bytes()) == {
        "http://127.0.0.1:8000": {"api_key": KEY},
        "https://hookd.example.com:443": {"api_key": "hk_remote"},
    }
    assert [p.name for p in tmp_path.iterdir()] == ["credentials.json"]  # no temp file left


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://0.0.0.0:8000", "http://127.0.0.1:8000"),
        ("http://localhost:8000/", "http://127.0.0.1:8000"),
        ("http://LOCALHOST:8000/v1/endpoints", "http://127.0.0.1:8000"),
        ("http://[::]:8000", "http://127.0.0.1:8000"),
        ("http://[::1]:8000", "http://127.0.0.1:8000"),
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("localhost:9000", "http://127.0.0.1:9000"),
        ("http://hookd.example.com", "http://hookd.example.com:80"),
        ("HTTPS://Hookd.Example.com/", "https://hookd.example.com:443"),
        ("http://[2001:db8::1]:8000", "http://[2001:db8::1]:8000"),
    ],
)
def test_normalise_url(url: str, expected: str) -> None:
    assert credentials.normalise_url(url) == expected


@pytest.mark.parametrize("url", ["ftp://example.com", "http://", "http://host:notaport", ""])
def test_normalise_url_refuses_what_is_not_an_http_url(url: str) -> None:
    with pytest.raises(errors.ConfigError):
        credentials.normalise_url(url)


def test_a_key_saved_for_0_0_0_0_is_found_at_127_0_0_1(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    credentials.save("http://0.0.0.0:8000", KEY, path=path)

    assert credentials.load("http://127.0.0.1:8000", path=path) == KEY
    assert credentials.load("http://localhost:8000", path=path) == KEY


def test_config_dir_resolution(tmp_path: Path) -> None:
    assert credentials.config_dir({"HOOKD_CONFIG_DIR": "/a", "XDG_CONFIG_HOME": "/b"}) == Path("/a")
    assert credentials.config_dir({"XDG_CONFIG_HOME": "/b"}) == Path("/b/hookd")
    assert credentials.config_dir({}) == Path.home() / ".config" / "hookd"
    assert credentials.credentials_path({"HOOKD_CONFIG_DIR": str(tmp_path)}) == (
        tmp_path / "credentials.json"
    )


def test_default_path_follows_hookd_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOKD_CONFIG_DIR", str(tmp_path / "conf"))
    credentials.save("http://127.0.0.1:8000", KEY)

    assert (tmp_path / "conf" / "credentials.json").exists()
    assert credentials.load("http://127.0.0.1:8000") == KEY


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]"])
def test_a_corrupt_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "credentials.json"
    path.write_bytes(content)

    with pytest.raises(errors.ConfigError, match="fix or delete it"):
        credentials.load("http://127.0.0.1:8000", path=path)
    with pytest.raises(errors.ConfigError):
        credentials.save("http://127.0.0.1:8000", KEY, path=path)
    assert path.read_bytes() == content  # left alone


def test_an_entry_without_a_key_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_bytes(b'{"http://127.0.0.1:8000": {"note": "x"}}')

    assert credentials.load("http://127.0.0.1:8000", path=path) is None
