"""README.md stays true: the two commands, and every mount option with its name."""

from __future__ import annotations

from pathlib import Path

from mssfs.config import OPTIONS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_two_commands_are_the_first_thing_shown() -> None:
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    assert "scripts/demo" in first_block and "scripts/test" in first_block


def test_every_mount_option_is_documented() -> None:
    missing = [option.name for option in OPTIONS if f"  {option.name}" not in README]
    assert missing == []
