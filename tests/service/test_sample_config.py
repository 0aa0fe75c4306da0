"""examples/llmemo.toml, the sample config: it names every setting, holds the defaults, and each
commented-out example value is valid (the file is loaded through the service's own loader)."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from llmemo.service.settings import Settings, load_settings

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llmemo.toml"
COMMENTED = re.compile(r"^# ([a-z_]+) = (.*)$", re.MULTILINE)


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the file speaks: no LLMEMO_* (nor the other variables settings read) from outside."""
    for name in [
        *(n for n in os.environ if n.upper().startswith("LLMEMO_")),
        "REDIS_URL",
        "OPENAI_BASE_URL",
        "ANTHROPIC_BASE_URL",
        "QSTASH_CURRENT_SIGNING_KEY",
        "QSTASH_NEXT_SIGNING_KEY",
    ]:
        monkeypatch.delenv(name, raising=False)


def test_every_setting_is_in_the_sample() -> None:
    text = SAMPLE.read_text()
    set_here = set(tomllib.loads(text))
    commented = {m.group(1) for m in COMMENTED.finditer(text)}
    assert not set_here & commented, "a setting is both set and commented out"
    assert set_here | commented == set(Settings.model_fields)


def test_the_sample_holds_the_defaults() -> None:
    sample = load_settings(SAMPLE)
    assert sample.model_dump() == load_settings().model_dump()
    for name in tomllib.loads(SAMPLE.read_text()):
        assert getattr(sample, name) == Settings.model_fields[name].default, name


def test_the_commented_examples_are_valid(tmp_path: Path) -> None:
    """Every `# name = value` line switched on still loads, and sets what it says."""
    text = SAMPLE.read_text()
    switched = COMMENTED.sub(r"\1 = \2", text)
    config = tmp_path / "all.toml"
    config.write_text(switched)
    settings = load_settings(config)
    for match in COMMENTED.finditer(text):
        name = match.group(1)
        value = getattr(settings, name)
        assert value is not None, name
        expected = tomllib.loads(f"{name} = {match.group(2)}")[name]
        shown = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        assert shown == expected, name
