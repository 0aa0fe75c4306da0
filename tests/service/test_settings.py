"""Settings: flags > environment > TOML file > defaults, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmemo.errors import ConfigError
from llmemo.service.settings import ANTHROPIC_URL, OPENAI_URL, Settings, load_settings


@pytest.fixture
def toml(tmp_path: Path) -> Path:
    path = tmp_path / "llmemo.toml"
    path.write_text(
        'store = "memory://from-file"\nport = 9001\nnamespace = "file"\nshared = true\n'
    )
    return path


def test_defaults() -> None:
    settings = load_settings()
    assert (settings.host, settings.port, settings.store, settings.shared) == (
        "127.0.0.1",
        8000,
        None,
        False,
    )
    assert settings.openai_url is None and settings.anthropic_url is None
    assert (settings.max_ttl, settings.max_entry_bytes, settings.max_model_labels) == (
        "30d",
        1024 * 1024,
        100,
    )


def test_file_then_environment_then_flags(toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(toml)
    assert (settings.store, settings.port, settings.namespace, settings.shared) == (
        "memory://from-file",
        9001,
        "file",
        True,
    )
    monkeypatch.setenv("REDIS_URL", "redis://redis-url:6379/0")
    assert load_settings(toml).store == "redis://redis-url:6379/0"
    monkeypatch.setenv("LLMEMO_STORE", "redis://llmemo-store:6379/0")
    monkeypatch.setenv("LLMEMO_PORT", "9100")
    settings = load_settings(toml)
    assert (settings.store, settings.port) == ("redis://llmemo-store:6379/0", 9100)
    settings = load_settings(toml, store="memory://flag", port=1234)
    assert (settings.store, settings.port) == ("memory://flag", 1234)


def test_config_file_from_the_environment(toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMEMO_CONFIG", str(toml))
    assert load_settings().port == 9001


def test_provider_urls_from_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://gateway:8080/v1/")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://claude-gateway")
    settings = load_settings()
    assert settings.openai_url == "http://gateway:8080/v1"
    assert settings.anthropic_url == "http://claude-gateway"
    assert load_settings(openai_base_url="http://flag/v1").openai_url == "http://flag/v1"


@pytest.mark.parametrize(
    ("preset", "openai", "anthropic"),
    [
        ("openai", OPENAI_URL, None),
        ("anthropic", None, ANTHROPIC_URL),
        ("providers", OPENAI_URL, ANTHROPIC_URL),
        ("demo", None, None),  # the CLI starts the demo upstream and fills both in
    ],
)
def test_upstream_presets(preset: str, openai: str | None, anthropic: str | None) -> None:
    settings = load_settings(upstream=preset)
    assert (settings.openai_url, settings.anthropic_url) == (openai, anthropic)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"port": "eighty"}, "port"),
        ({"namespace": "has space"}, "namespace"),
        ({"ttl": "forever"}, "not a duration"),
        ({"upstream": "bedrock"}, "upstream"),
        ({"openai_base_url": "api.openai.com"}, "not a URL"),
        ({"max_body_bytes": 0}, "max_body_bytes"),
        ({"max_ttl": "inf"}, "finite"),
        ({"max_ttl": "0"}, "max_ttl must be positive"),
        ({"ttl": "60d"}, "over the maximum"),
        ({"ttl": "2h", "max_ttl": "1h"}, "over the maximum"),
        ({"stale_grace": "1e308"}, "stale_grace"),
        ({"near_ttl": "nan"}, "finite"),
        ({"max_entry_bytes": 0}, "max_entry_bytes"),
        ({"max_model_labels": -1}, "max_model_labels"),
        ({"client_keys": "sk-1, sha256:abc"}, "client_keys"),
        ({"semantic_max_body_bytes": 0}, "semantic_max_body_bytes"),
        ({"semantic_max_error": 0}, "semantic_max_error: .*max_error must be"),
        ({"semantic_max_error": 0.6}, r"in \(0, 0.5\]"),
        ({"semantic_judge": "fuzzy"}, "semantic_judge: .*judge must be one of"),
        ({"semantic_max_error": 0.02, "semantic_judge": "llm"}, "needs semantic_verifier"),
    ],
)
def test_bad_values_are_one_line_config_errors(flags: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(**flags)
    assert "\n" not in str(caught.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('colour = "blue"\n')
    with pytest.raises(ConfigError, match="colour"):
        load_settings(unknown)
    broken = tmp_path / "broken.toml"
    broken.write_text("port = \n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(broken)


def test_workers_get_the_exact_settings_including_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llmemo.service import app as service_app

    settings = load_settings(
        store="redis://127.0.0.1:1/0",
        workers=3,
        shared=True,
        ttl="2h",
        warm_token="s3cret-token",
        semantic_threshold=0.9,
    )
    for name, value in service_app.worker_environment(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LLMEMO_NAMESPACE", "not-this-one")  # the handed-over settings win
    built: list[Settings] = []
    monkeypatch.setattr(service_app, "create_app", built.append)
    service_app.worker_app()
    assert len(built) == 1 and built[0].model_dump() == settings.model_dump()
    assert built[0].warm_token is not None
    assert built[0].warm_token.get_secret_value() == "s3cret-token"


def test_sensitive_policy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmemo.core.sensitive import DEFAULT_SKIP, SECRETS

    assert load_settings().sensitive_policy().skips("default") == DEFAULT_SKIP
    monkeypatch.setenv("LLMEMO_SENSITIVE_SKIP", "email, faq:phone")
    monkeypatch.setenv("LLMEMO_SENSITIVE_ALLOW", "card")
    monkeypatch.setenv("LLMEMO_SENSITIVE_PATTERNS", '{"employee": "EMP-[0-9]{6}"}')
    policy = load_settings().sensitive_policy()
    assert policy.skips("default") == SECRETS | {"email", "employee"}
    assert policy.skips("faq") == SECRETS | {"email", "employee", "phone"}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LLMEMO_SENSITIVE_SKIP", "passwords", "unknown sensitive category 'passwords'"),
        ("LLMEMO_SENSITIVE_PATTERNS", '{"broken": "("}', "bad regex"),
    ],
)
def test_a_bad_sensitive_setting_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


KEY = "Iq1cZ2Qm7l0Xv3k8Hn0fYp5wT4rS6uV9aB2cD3eF4gE="  # 32 bytes, for these tests only


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("k1", "encryption_keys: .*id:base64key"),
        ("k1:not base64!", "encryption_keys: .*'k1' is not valid base64"),
        ("k1:AAAA", "encryption_keys: .*'k1' is 3 bytes; AES-256 needs 32"),
        (f"k1:{KEY},k1:{KEY}", "encryption_keys: .*'k1' is given twice"),
    ],
    ids=["no-id", "bad-base64", "wrong-length", "duplicate-id"],
)
def test_bad_encryption_keys_are_one_line_errors_without_the_key(
    monkeypatch: pytest.MonkeyPatch, keys: str, message: str
) -> None:
    monkeypatch.setenv("LLMEMO_ENCRYPTION_KEYS", keys)
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings()
    assert "\n" not in str(caught.value)
    assert KEY not in str(caught.value) and "not base64!" not in str(caught.value)


def test_encryption_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMEMO_ENCRYPTION_KEYS", f"k2:{KEY}, k1:{KEY}")
    monkeypatch.setenv("LLMEMO_ENCRYPTION_REQUIRED", "true")
    settings = load_settings()
    assert settings.encryption_keys is not None and settings.encryption_required
    assert KEY not in repr(settings)
