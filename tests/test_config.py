from __future__ import annotations

from pathlib import Path

import pytest

from gsmgw.config import Config, from_dict, load, parse_listen
from gsmgw.errors import ConfigError

EXAMPLE = Path(__file__).parent.parent / "config" / "gsmgw.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "gsmgw.toml"
    p.write_text(text)
    return p


def test_example_config_loads_and_is_frozen() -> None:
    cfg = load(EXAMPLE)
    assert cfg.api.listen == "127.0.0.1:8080"
    assert cfg.modem[0].id == "sim1"
    assert cfg.modem[0].send_timeout_s == 60.0
    with pytest.raises(AttributeError):
        cfg.api.listen = "0.0.0.0:1"  # type: ignore[misc]


def test_defaults_without_file() -> None:
    cfg = from_dict({})
    assert isinstance(cfg, Config)
    assert cfg.store.url.startswith("sqlite:")
    assert cfg.dispatch.unknown_policy == "never"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[api]\nlisten = 8080\n", "api.listen: expected a string, got 8080"),
        ("[api]\nlisten = 'nowhere'\n", "api.listen: expected HOST:PORT"),
        ("[api]\nlistn = '1.2.3.4:1'\n", "api.listn: unknown key"),
        ("[bogus]\nx = 1\n", "bogus: unknown key"),
        ("[dispatch]\nmax_parts = 'ten'\n", "dispatch.max_parts: expected an integer, got 'ten'"),
        ("[dispatch]\nmax_parts = true\n", "dispatch.max_parts: expected an integer, got True"),
        ("[dispatch]\npoll_interval_s = -1\n", "dispatch.poll_interval_s: must not be negative"),
        ("[dispatch]\nunknown_policy = 'maybe'\n", "dispatch.unknown_policy: expected one of 'never', 'resend'"),
        ("[[modem]]\nport = '/dev/x'\n", "modem[0].id: required key is missing"),
        ("[[modem]]\nid = 'a'\n", "modem[0]: give port, imei or iccid"),
        ("[[modem]]\nid = 'a'\nport = '/dev/x'\nsend_timeout_s = 'slow'\n",
         "modem[0].send_timeout_s: expected a number, got 'slow'"),
        ("[[modem]]\nid = 'a'\nport = '/x'\n[[modem]]\nid = 'a'\nport = '/y'\n", "modem[1].id: duplicate"),
        ("[[modem]]\nid = 'a'\nport = '/x'\npin = '12a4'\n", "modem[0].pin: expected 4 to 8 digits"),
        ("[webhooks]\nallowed_hosts = 'crm'\n", "webhooks.allowed_hosts: expected an array"),
        ("[[webhooks.subscription]]\nurl = 'ftp://x'\n", "webhooks.subscription[0].url: expected an http(s) URL"),
        ("[api]\ntls_cert_file = 'a.pem'\n", "give both or neither"),
        ("[api]\ndefault_region = 'USA'\n", "api.default_region"),
        ("not toml = = 1", "not valid TOML"),
    ],
)
def test_config_errors_name_file_key_and_expectation(tmp_path: Path, toml: str, expected: str) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as err:
        load(path)
    msg = str(err.value)
    assert msg.startswith(str(path) + ": "), msg
    assert expected in msg, msg


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "absent.toml")


def test_int_accepted_for_float_fields(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, "[[modem]]\nid = 'a'\nport = '/dev/x'\nsend_timeout_s = 30\n"))
    assert cfg.modem[0].send_timeout_s == 30.0
    assert isinstance(cfg.modem[0].send_timeout_s, float)


def test_parse_listen_ipv6() -> None:
    assert parse_listen("[::1]:8080") == ("::1", 8080)
    assert parse_listen("0.0.0.0:80") == ("0.0.0.0", 80)
    with pytest.raises(ValueError):
        parse_listen("host:99999")
