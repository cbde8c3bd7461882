"""Secret audit: what `tootlake.redact` must catch beyond a token spelled whole (a URL's login,
a token cut short, a token percent-encoded by another library, a quote escaped by repr),
the secrets `load_settings` must register (S3's), and the permission checks of token, config
and key files (symlinks, FIFOs, folders)."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import yarl
from hypothesis import given, settings
from hypothesis import strategies as st

from tootlake import redact as redact_module
from tootlake.collector import read_token_file
from tootlake.errors import ConfigError
from tootlake.pseudonym import KEY_BYTES, read_key
from tootlake.redact import MASK, redact, register_secret
from tootlake.settings import load_settings

# -- a URL's login -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        # confluent-kafka's own error for a mistyped scheme (the traceback of a CLI run)
        "ValueError: Invalid url htp://apikey:Reg1stryS3cretPass@127.0.0.1:1",
        "Cannot reach https://apikey:Reg1stryS3cretPass@psrc-1.confluent.cloud/subjects",
        "{'url': 'HTTPS://apikey:Reg1stryS3cretPass@registry'}",
    ],
)
def test_the_password_of_a_url_login_is_masked(text):
    out = redact(text)
    assert "Reg1stry" not in out and f"apikey:{MASK}@" in out


@pytest.mark.parametrize(
    "text",
    [
        "https://mastodon.social/@alice:matrix.org@x",  # a path, not a login
        "https://host.example:8443/@alice",
        "see alice:secret@example.com",  # no scheme: an e-mail-like text stays
    ],
)
def test_text_that_is_no_url_login_stays(text):
    assert redact(text) == text


def test_a_schema_registry_password_is_not_in_the_cli_traceback(tmp_path):
    """`--schema-registry` with a mistyped scheme: confluent-kafka raises ValueError("Invalid
    url <the URL>"), a traceback the command line prints, login included."""
    pytest.importorskip("confluent_kafka")
    statuses = tmp_path / "s.jsonl"
    statuses.write_text('{"id": "1"}\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOTLAKE_", "AWS_"))}
    env["TOOTLAKE_CONFIG"] = os.devnull
    proc = subprocess.run(
        [sys.executable, "-m", "tootlake", "--log-level", "debug", "replay", str(statuses),
         "--lake", str(tmp_path / "lake"), "--kafka", "127.0.0.1:1",
         "--schema-registry", "htp://apikey:Reg1stryS3cretPass@127.0.0.1:1"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "Reg1stryS3cretPass" not in proc.stdout + proc.stderr, proc.stderr[-2000:]


# -- a token cut short ---------------------------------------------------------------------

CUT_TOKEN = "cUt-t0ken-AbCdEfGhIjKlMnOpQrStUvWxYz0123"  # 40 characters, as real ones are


def test_a_long_token_cut_short_is_masked_from_half_of_it():
    """Messages are shortened before they are redacted (an error body to 200 characters, a
    detail to 500...): the first part of a token cut there is no longer the whole token."""
    register_secret(CUT_TOKEN)
    for cut in range(len(CUT_TOKEN) // 2, len(CUT_TOKEN) + 1):
        shown = CUT_TOKEN[:cut]
        for text in (
            f"HTTP 401 'The access token {shown}'",
            f"HTTP 401 {('The access token ' + shown)!r} (retrying)",
            shown,
        ):
            out = redact(text)
            assert shown not in out and MASK in out, (cut, out)


def test_a_short_secrets_first_half_is_no_secret():
    """(a 17-character token's first 8, `hostile-`, were masked in every reject's text: the
    simulator's markers `tootlake-hostile-N-M` were gone)"""
    register_secret("hostile-e2e-token")
    text = '{"content": "tootlake-hostile-21-103"}'
    assert redact(text) == text
    assert redact("a hostile-e2e-token here") == f"a {MASK} here"


def test_a_cut_short_rule_leaves_ordinary_words_of_a_wordy_password():
    register_secret("tootlake-secret-2024-rotation-a")
    text = "Run `tootlake compact` (tootlake-producer#producer-1)"
    assert redact(text) == text


# -- a token as a URL or repr spells it --------------------------------------------------

ODD_TOKEN = 'a/b+c=d e&f"é-0123456789'


@pytest.mark.parametrize(
    "shown",
    [
        yarl.URL.build(scheme="http", host="h", path="/p", query={"t": ODD_TOKEN}).raw_query_string,
        quote(ODD_TOKEN, safe=""),
        quote(ODD_TOKEN, safe="").lower(),  # hex in lower case, as some servers write it
        quote_plus(ODD_TOKEN, safe=""),
        quote(ODD_TOKEN),  # urllib's default keeps /
    ],
)
def test_a_registered_token_is_masked_however_a_url_encodes_it(shown):
    """A server echoing the token in a Location or an error (`?t=...`) encodes it its way:
    yarl keeps `/` and writes a space `+`; urllib encodes all or keeps `/`."""
    register_secret(ODD_TOKEN)
    out = redact(f"a redirect to http://other.example/login?{shown}&x=1")
    assert "0123456789" not in out, out


def test_a_token_with_a_quote_is_masked_in_the_repr_of_a_longer_string():
    """repr('said "' + token) escapes the token's ' (the string holds both quotes), a form
    neither the token nor its own repr has."""
    token = "it's-a-S3cret-token-xyz"
    register_secret(token)
    for text in (
        repr('server said "' + token),
        ascii('said "é' + token),
        str(repr(('x"' + token).encode())),
    ):
        assert "S3cret" not in redact(text), text


# -- S3 credentials ------------------------------------------------------------------------


def test_load_settings_registers_the_s3_credentials(monkeypatch):
    monkeypatch.setenv("TOOTLAKE_CONFIG", os.devnull)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLE+sessiontoken/0123456789=")
    load_settings()
    out = redact(
        "<Token-0>FwoGZXIvYXdzEXAMPLE+sessiontoken/0123456789=</Token-0> "
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    )
    assert "EXAMPLE" not in out, out


# -- who can read the files holding secrets -------------------------------------------------


def _private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_a_private_symlink_to_a_token_file_others_can_read_gets_the_warning(tmp_path, caplog):
    target = _private(tmp_path / "shared-tokens", "a.example=tok-0123456789\n", 0o644)
    link = tmp_path / "tokens"
    link.symlink_to(target)  # a link's own mode is 0777 and means nothing: the target's counts
    with caplog.at_level(logging.WARNING):
        assert read_token_file(link) == {"a.example": "tok-0123456789"}
    assert "other users can read it (mode 0644)" in caplog.text
    assert "tok-0123456789" not in caplog.text


def test_a_token_fifo_others_can_read_is_read_and_warned_about(tmp_path, caplog):
    """`--token-file <(pass show ...)` is a pipe (mode 0600: no warning); a named FIFO others
    may open gets the warning, whose text has no token."""
    fifo = tmp_path / "tokens"
    os.mkfifo(fifo, 0o644)
    fifo.chmod(0o644)

    def write() -> None:
        with open(fifo, "w", encoding="utf-8") as handle:
            handle.write("a.example=fifo-token-0123456789\n")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    with caplog.at_level(logging.WARNING):
        assert read_token_file(fifo) == {"a.example": "fifo-token-0123456789"}
    writer.join(10)
    assert "other users can read it" in caplog.text and "fifo-token" not in caplog.text


def test_a_token_file_that_is_a_folder_is_a_clean_error(tmp_path):
    with pytest.raises(ConfigError, match="Cannot read the token file"):
        read_token_file(tmp_path)


def test_a_config_file_linked_to_one_others_can_read_gets_the_warning(
    tmp_path, monkeypatch, caplog
):
    target = _private(tmp_path / "shared.toml", '[tokens]\n"a.example" = "cfg-token-0123"\n', 0o640)
    link = tmp_path / "tootlake.toml"
    link.symlink_to(target)
    monkeypatch.setenv("TOOTLAKE_CONFIG", str(link))
    with caplog.at_level(logging.WARNING):
        settings = load_settings()
    assert settings.tokens == {"a.example": "cfg-token-0123"}
    assert "other users can read it (mode 0640)" in caplog.text
    assert "cfg-token-0123" not in caplog.text + repr(settings)


def test_a_key_file_linked_to_one_others_can_read_is_refused(tmp_path):
    target = tmp_path / "shared.key"
    target.write_bytes(b"k" * KEY_BYTES)
    target.chmod(0o644)
    link = tmp_path / "study.key"
    link.symlink_to(target)
    with pytest.raises(ConfigError, match="can be read by other users") as info:
        read_key(link)
    assert "kkkk" not in str(info.value)
    target.chmod(0o600)
    assert read_key(link) == b"k" * KEY_BYTES  # a private target through a link is fine


def test_a_bug_in_a_thread_prints_its_traceback_redacted():
    """(threading.excepthook was Python's own: a thread's uncaught exception printed as is)"""
    code = (
        "import threading\n"
        "from tootlake.cli.logs import setup_logging\n"
        "from tootlake.redact import register_secret\n"
        "setup_logging('warning', 'text')\n"
        "register_secret('tootlake-thread-secret-0123')\n"
        "def work():\n"
        "    raise RuntimeError('refused tootlake-thread-secret-0123')\n"
        "thread = threading.Thread(target=work, name='tootlake-fleet')\n"
        "thread.start(); thread.join()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert "Exception in tootlake-fleet" in result.stderr, result.stderr
    assert "RuntimeError: refused ***" in result.stderr, result.stderr
    assert "thread-secret" not in result.stderr


# -- the automaton against the rule it implements, on any input ---------------------------

_CHARS = "abAB%'\"\\ -_é"  # few letters: secrets overlap and repeat; quotes and escapes


@contextlib.contextmanager
def _own_registry():
    """register_secret's state for this example alone (the suite's secrets are put back)."""
    saved = (redact_module._secrets, redact_module._known, redact_module._urls)
    redact_module._secrets, redact_module._known, redact_module._urls = set(), None, None
    try:
        yield
    finally:
        redact_module._secrets, redact_module._known, redact_module._urls = saved


@settings(max_examples=300, deadline=None)
@given(
    secrets=st.lists(st.text(_CHARS, min_size=8, max_size=44), min_size=1, max_size=4),
    pieces=st.lists(
        st.one_of(
            st.text(_CHARS, max_size=8),
            st.tuples(st.integers(0, 3), st.integers(0, 50), st.booleans()),
        ),
        max_size=10,
    ),
)
def test_no_registered_secret_nor_its_first_half_survives(secrets, pieces):
    """Text made of filler and of secrets whole, cut short or spelled as repr spells them:
    no secret is left whole, nor (for one of CUT_MIN_LENGTH or more) its first half; text
    holding none of them is left as it was."""
    from tootlake.redact import CUT_MIN_HEAD, CUT_MIN_LENGTH, MIN_SECRET_LENGTH

    parts = []
    for piece in pieces:
        if isinstance(piece, str):
            parts.append(piece)
        else:
            which, cut, spelled = piece
            secret = secrets[which % len(secrets)]
            parts.append((repr(secret)[1:-1] if spelled else secret)[:cut])
    text = "".join(parts)
    with _own_registry():
        register_secret(*secrets)
        out = redact(text)
    for secret in secrets:
        assert secret not in out
        assert repr(secret)[1:-1] not in out
        if len(secret) >= CUT_MIN_LENGTH:
            assert secret[: max(CUT_MIN_HEAD, len(secret) // 2)] not in out
    # (the filler cannot spell `Bearer`, `access_token=`, `://` or a %-escape: digits)
    forms = [form for s in secrets for form in redact_module._spellings(s)]
    if not any(form[:MIN_SECRET_LENGTH] in text for form in forms):
        assert out == text


def test_a_secret_overlapping_what_a_cut_one_masked_is_still_found():
    """A cut secret is masked beyond its head's match; the search goes on from there, not
    from where the automaton's own last match ended (which hid a whole secret there)."""
    with _own_registry():
        register_secret("A" * 16 + "x" * 16, "xxxxQQQQ", "QQQQRRRR")
        assert redact("A" * 16 + "xxxxQQQQRRRR!") == "******!"
