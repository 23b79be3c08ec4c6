"""The ``mssfs`` command (placeholder until the mount lands)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    print("mssfs: not yet")
    return 0
