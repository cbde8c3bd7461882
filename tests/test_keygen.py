"""`tootlake keygen`: a private key file, written atomically, never printed."""

from __future__ import annotations

import os
import stat

import pytest
from click.testing import CliRunner

from tootlake.cli import main
from tootlake.errors import ConfigError
from tootlake.pseudonym import KEY_BYTES, generate_key, key_id, read_key


@pytest.fixture
def open_umask():
    old = os.umask(0)  # the most permissive umask: the mode must still be 0600
    yield
    os.umask(old)


def test_keygen_writes_32_private_bytes_and_prints_only_the_key_id(tmp_path, open_umask):
    path = tmp_path / "key"
    result = CliRunner().invoke(main, ["keygen", str(path)])
    assert result.exit_code == 0, result.output
    key = path.read_bytes()
    assert len(key) == KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key_id(key) in result.output
    for spelling in (key.hex(), key.hex().upper(), repr(key)):
        assert spelling not in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["key"]  # no temporary file left
    assert read_key(path) == key


def test_keygen_never_makes_a_file_others_can_read_even_for_an_instant(
    tmp_path, open_umask, monkeypatch
):
    created = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *args, **kwargs):
        if flags & os.O_CREAT:
            created.append((os.fspath(path), flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    generate_key(tmp_path / "key")
    assert created, "the key file is created with os.open"
    for _, flags, mode in created:
        assert flags & os.O_EXCL and mode == 0o600


def test_keygen_refuses_to_overwrite_unless_forced(tmp_path):
    path = tmp_path / "key"
    first = generate_key(path)
    before = path.read_bytes()
    result = CliRunner().invoke(main, ["keygen", str(path)])
    assert result.exit_code == 1 and "exists" in result.output and "--force" in result.output
    assert path.read_bytes() == before
    second = CliRunner().invoke(main, ["keygen", str(path), "--force"])
    assert second.exit_code == 0, second.output
    assert path.read_bytes() != before and first not in second.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_key_others_can_read_or_of_the_wrong_size_is_refused(tmp_path):
    path = tmp_path / "key"
    generate_key(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_key(path)
    path.chmod(0o600)
    path.write_bytes(b"short")
    with pytest.raises(ConfigError, match="not a tootlake key"):
        read_key(path)


def test_keygen_makes_a_missing_folder_for_its_owner_only(tmp_path):
    """`tootlake keygen ~/.config/tootlake/study.key` on a fresh machine (docs/research.md)."""
    path = tmp_path / "config" / "tootlake" / "study.key"
    result = CliRunner().invoke(main, ["keygen", str(path)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(read_key(path)) == KEY_BYTES


def test_keygen_where_no_folder_can_be_made_is_a_clean_error(tmp_path):
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(main, ["keygen", str(tmp_path / "file" / "key")])
    assert result.exit_code == 1 and "cannot make the folder" in result.output, result.output
    assert "Traceback" not in result.output


def test_keygen_refuses_a_quoted_tilde(tmp_path, monkeypatch):
    """`tootlake keygen "~/keys/study.key"`: the shell leaves the ~ alone, and making the
    folder would make `./~` (whose obvious clean-up, `rm -rf ~`, is a disaster)."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["keygen", "~/keys/study.key"])
    assert result.exit_code == 1 and "literal ~" in result.output, result.output
    assert not (tmp_path / "~").exists()
