"""The README is the user's manual: its two opening commands and its settings tables must stay true."""

from __future__ import annotations

from pathlib import Path

from tracetape.schemas import config

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme() -> None:
    declared = {value.env for value in vars(config).values() if isinstance(value, config.Setting)}
    assert len(declared) > 30
    missing = sorted(env for env in declared if f"`{env}`" not in README)
    assert not missing, f"settings not in README.md: {missing}"


def test_the_readme_opens_with_the_demo_and_the_test_command() -> None:
    block = README.split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert block == [
        "python3 -m venv .venv && .venv/bin/pip install -e '.[demo]' && .venv/bin/tracetape demo",
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest",
    ]
