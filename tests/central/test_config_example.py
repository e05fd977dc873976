"""The example central config in config/ is valid and names every section."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from central.config import CentralConfig, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "central.example.toml"


def test_example_config_parses() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.database.resolved_url() == "postgresql+psycopg://traceway@127.0.0.1:5432/traceway"
    assert (cfg.broker.host, cfg.broker.port) == ("127.0.0.1", 1883)
    assert cfg.broker.is_local and not cfg.broker.use_tls
    assert cfg.api.port == 8380 and cfg.api.token_file is None


def test_example_config_shows_every_key() -> None:
    """Each key of the config model appears in the example (set or commented out)."""
    text = EXAMPLE.read_text(encoding="utf-8")

    def keys(model: type[BaseModel], prefix: str = "") -> list[str]:
        out: list[str] = []
        for name, field in model.model_fields.items():
            sub = field.annotation
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                assert f"[{prefix}{name}]" in text, f"section [{prefix}{name}] missing"
                out += keys(sub, f"{prefix}{name}.")
            else:
                out.append(name)
        return out

    missing = [k for k in keys(CentralConfig) if f"{k} = " not in text]
    assert not missing, f"keys not in {EXAMPLE.name}: {missing}"
