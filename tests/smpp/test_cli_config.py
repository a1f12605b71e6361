"""`gsmgw smpp accounts ...` and the [smpp] config section."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsmgw.cli import main
from gsmgw.config import ConfigError, from_dict, load
from gsmgw.smpp.accounts import verify_password
from gsmgw.store import Store


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "gsmgw.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "gsmgw.db"}"\n[smpp]\nlisten = "127.0.0.1:2775"\n')
    return cfg


def test_accounts_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(_config(tmp_path))
    assert main(["smpp", "accounts", "create", "kannel", "--scope", "send", "--rate-per-s", "50",
                 "--daily-quota", "1000", "--max-binds", "2", "--note", "the Kannel box", "-c", cfg]) == 0
    password = capsys.readouterr().out.strip()
    assert len(password) == 8  # generated, printed once, alone
    assert main(["smpp", "accounts", "create", "other", "--password", "given", "-c", cfg]) == 0
    assert capsys.readouterr().out.strip() == "given"
    store = Store(f"sqlite:///{tmp_path / 'gsmgw.db'}")
    try:
        row = store.smpp.get_account("kannel")
        assert row is not None and verify_password(password, row["password_hash"])
        assert not verify_password("wrong", row["password_hash"]) and password not in row["password_hash"]
        assert (row["rate_per_s"], row["daily_quota"], row["max_binds"]) == (50, 1000, 2)
    finally:
        store.close()
    assert main(["smpp", "accounts", "list", "-c", cfg]) == 0
    listing = capsys.readouterr().out
    assert "kannel\tsend\trate=50/s" in listing and password not in listing
    assert main(["smpp", "accounts", "revoke", "kannel", "-c", cfg]) == 0
    assert main(["smpp", "accounts", "revoke", "kannel", "-c", cfg]) == 1
    capsys.readouterr()


@pytest.mark.parametrize(("args", "message"), [
    (["create", "x" * 16], "system_id"),
    (["create", "ok", "--password", "ninechars"], "password"),
    (["create", "ok", "--scope", "root"], "scopes"),
    (["create", "ok", "--rate-per-s", "-1"], "negative"),
])
def test_accounts_cli_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                              message: str) -> None:
    assert main(["smpp", "accounts", *args, "-c", str(_config(tmp_path))]) == 2
    out = capsys.readouterr()
    assert message in out.err and out.out == ""


def test_smpp_config_defaults_off(tmp_path: Path) -> None:
    assert from_dict({}).smpp.listen == ""
    cfg = load(_config(tmp_path))
    assert cfg.smpp.listen == "127.0.0.1:2775" and cfg.smpp.window == 10


@pytest.mark.parametrize(("smpp", "key"), [
    ({"listen": "nowhere"}, "smpp.listen"),
    ({"tls_cert_file": "a.pem"}, "smpp.tls_cert_file"),
    ({"window": 0}, "smpp.window"),
    ({"default_alphabet": "ebcdic"}, "smpp.default_alphabet"),
    ({"concat_policy": "drop"}, "smpp.concat_policy"),
    ({"unknown": 1}, "smpp.unknown"),
    ({"route": [{"system_id": "a", "sender_prefix": "44"}]}, "smpp.route[0].sender_prefix"),
    ({"route": [{"system_id": "a", "text_regex": "("}]}, "smpp.route[0].text_regex"),
    ({"route": [{"sim": "sim1"}]}, "smpp.route[0].system_id"),
])
def test_smpp_config_errors_name_the_key(smpp: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_dict({"smpp": smpp}, source="gsmgw.toml")
    assert f"gsmgw.toml: {key}" in str(err.value)
