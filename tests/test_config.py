"""Config: validation errors name file and key; the example documents every key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from gateway.config import ConfigError, GatewayConfig, config_warnings, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
BASE = '[gateway]\nsite = "s"\nid = "g"\n[stations.a]\nstep = "receiving"\n'


def err(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as ei:
        parse_config(text, "gw.toml")
    return ei.value


def test_minimal_config_defaults() -> None:
    cfg = parse_config(BASE, "gw.toml")
    assert cfg.broker.port == 1883
    assert cfg.storage.synchronous == "FULL"
    assert cfg.client_id == "traceway-s-g"
    assert cfg.broker.tls.enabled is None
    assert cfg.broker.use_tls is False  # loopback broker: plaintext allowed
    remote = parse_config(BASE + '[broker]\nhost = "mqtt.example.com"\n', "gw.toml")
    assert remote.broker.use_tls is True  # anything else: TLS unless explicitly disabled
    assert err(BASE.replace('id = "g"', 'id = "cache"')).key == "gateway.id"


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("[gateway]\nsite='s'\n", "gateway.id", "Field required"),
        (BASE.replace("receiving", "recieving"), "stations.a.step", "Input should be"),
        (BASE + "[broker]\nport = 70000\n", "broker.port", "less than or equal"),
        (BASE + "[broker]\nprot = 1\n", "broker.prot", "did you mean 'port'?"),
        (
            BASE + "[scanners.t]\ntype='tcp'\nstation='a'\nport=0\n",
            "scanners.t.port",
            "greater than",
        ),
        (
            BASE + "[scanners.t]\ntype='tcp'\nstation='zz'\nport=1\n",
            "scanners.t.station",
            "unknown station 'zz'",
        ),
        (BASE + "[scanners.t]\ntype='usb'\nstation='a'\n", "scanners.t", "tag"),
        (
            BASE + "[[patterns]]\nkind='location'\nregex='(['\n",
            "patterns[0].regex",
            "regular expression",
        ),
        (BASE + "[storage]\noutbox_low_watermark=0.9\n", "storage", "below"),
        (BASE.replace('site = "s"', 'site = "a/b"'), "gateway.site", "pattern"),
        (
            BASE + "[stations.b]\nstep='shipping'\nprint_on_accept='lot'\n",
            "stations.b.printer",
            "required",
        ),
    ],
)
def test_errors_name_file_and_key(text: str, key: str, words: str) -> None:
    e = err(text)
    assert e.file == "gw.toml"
    assert e.key == key, str(e)
    assert words in e.message
    assert str(e).startswith(f"gw.toml: {key}: ")


def test_toml_syntax_error_names_file() -> None:
    e = err("[gateway\n")
    assert "not valid TOML" in str(e) and "gw.toml" in str(e)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


def test_relative_paths_resolve_against_config_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    f = tmp_path / "sub" / "gw.toml"
    f.write_text(BASE + '[storage]\npath = "state/x.db"\n[broker]\npassword_file = "pw"\n')
    cfg = load_config(f)
    assert cfg.storage.path == (tmp_path / "sub" / "state" / "x.db").resolve()
    assert cfg.broker.password_file == (tmp_path / "sub" / "pw").resolve()


def test_password_from_env_or_file_never_from_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    cfg = parse_config(BASE + f'[broker]\nusername = "g"\npassword_file = "{pw}"\n', "x")
    assert cfg.broker.password() == "s3cret"
    monkeypatch.setenv("TW_PW", "fromenv")
    cfg = parse_config(BASE + '[broker]\npassword_env = "TW_PW"\n', "x")
    assert cfg.broker.password() == "fromenv"
    assert "password" not in GatewayConfig.model_fields["broker"].annotation.model_fields  # type: ignore[union-attr]


def test_world_readable_secret_warns(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("x")
    os.chmod(pw, 0o644)
    f = tmp_path / "gw.toml"
    f.write_text(BASE + f'[broker]\nusername = "g"\npassword_file = "{pw}"\n')
    cfg = load_config(f)
    assert any("readable by others" in w for w in config_warnings(f, cfg))
    os.chmod(pw, 0o600)
    assert config_warnings(f, cfg) == []


def _keys(model: type[BaseModel]) -> set[str]:
    out: set[str] = set()
    for name, field in model.model_fields.items():
        out.add(name)
        ann = field.annotation
        for sub in getattr(ann, "__args__", ()) or (ann,):
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                out |= _keys(sub)
    return out


def test_example_documents_every_key() -> None:
    from drivers.printers.config import PrinterConfig
    from drivers.scanners import config as sc

    text = (ROOT / "config" / "gateway.example.toml").read_text()
    load_config(ROOT / "config" / "gateway.example.toml")
    models: list[type[BaseModel]] = [
        GatewayConfig,
        PrinterConfig,
        sc.ReplayScanner,
        sc.SerialScanner,
        sc.TcpScanner,
        sc.EvdevScanner,
        sc.HidPosScanner,
        sc.PhoneScanner,
        sc.FramerConfig,
    ]
    keys: set[str] = set()
    for m in models:
        keys |= _keys(m)
    documented = set(re.findall(r"^\s*#?\s*([a-z_]+)\s*=", text, re.M)) | set(
        re.findall(r"[{,]\s*([a-z_]+)\s*=", text)
    )
    sections = set(re.findall(r"\[+([a-z_.0-9]+)\]+", text))
    section_words = {w for s in sections for w in s.split(".")}
    missing = sorted(k for k in keys if k not in documented and k not in section_words)
    assert missing == [], f"keys not documented in gateway.example.toml: {missing}"


def test_demo_config_and_check_config_cli(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "check-config", str(ROOT / "config" / "demo.toml")],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE + "[broker]\nport = 'x'\n")
    r = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "check-config", str(bad)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2  # a config error: the same code as ``run`` (exit_codes.py)
    assert f"{bad}: broker.port: " in r.stderr


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("[brokr]\nport = 1\n", "brokr", "did you mean 'broker'?"),
        ("[broker.tls]\nca_flie = 'x'\n", "broker.tls.ca_flie", "did you mean 'ca_file'?"),
        ("[stations.a.feedback]\nconsol = true\n", "stations.a.feedback.consol", "'console'"),
        (
            "[scanners.t]\ntype = 'tcp'\nstation = 'a'\nport = 1\nhots = 'x'\n",
            "scanners.t.hots",
            "did you mean 'host'?",
        ),
        ("[printers.p]\ntransport = 'file'\npaht = 'x'\n", "printers.p.paht", "'path'"),
        (
            "[[patterns]]\nkind = 'location'\nregex = 'x'\nnmae = 'q'\n",
            "patterns[0].nmae",
            "'name'",
        ),
        ("[broker]\nxyzzy = 1\n", "broker.xyzzy", "(known: client_id, enabled, host,"),
    ],
)
def test_unknown_keys_get_a_suggestion(text: str, key: str, words: str) -> None:
    e = err(BASE + text)
    assert e.key == key, str(e)
    assert words in e.message and "Extra inputs" not in e.message


def test_password_in_config_points_to_password_file() -> None:
    e = err(BASE + '[broker]\nusername = "gw"\npassword = "hunter2"\n')
    assert e.key == "broker.password"
    assert "password_file" in e.message and "password_env" in e.message
    assert "hunter2" not in str(e)


def test_plaintext_credentials_to_a_remote_broker_are_a_config_error() -> None:
    for creds in ('username = "gw"', 'password_env = "TW_PW"', 'password_file = "pw"'):
        text = (
            BASE + f'[broker]\nhost = "mqtt.example.com"\n{creds}\n[broker.tls]\nenabled = false\n'
        )
        e = err(text)
        assert e.key == "broker.tls.enabled", str(e)
        assert "plaintext to mqtt.example.com" in e.message
    # TLS on (the default for a remote broker), or a broker on this machine: fine
    parse_config(BASE + '[broker]\nhost = "mqtt.example.com"\nusername = "gw"\n', "gw.toml")
    parse_config(BASE + '[broker]\nusername = "gw"\n[broker.tls]\nenabled = false\n', "x")
    # no credentials: allowed, with a warning
    cfg = parse_config(BASE + '[broker]\nhost = "10.1.2.3"\n[broker.tls]\nenabled = false\n', "x")
    assert any("unencrypted to 10.1.2.3:1883" in w for w in config_warnings("x", cfg))


def test_tls_files_without_tls_warn(tmp_path: Path) -> None:
    f = tmp_path / "gw.toml"
    f.write_text(BASE + '[broker.tls]\nca_file = "ca.pem"\n')  # loopback broker: TLS off
    cfg = load_config(f)
    assert any(
        w.startswith("broker.tls.ca_file: set, but TLS is off") for w in config_warnings(f, cfg)
    )
