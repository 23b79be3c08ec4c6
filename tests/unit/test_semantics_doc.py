"""docs/SEMANTICS.md stays true: every test it names exists, and its errno table is the
one ``mssfs.errors`` applies."""

from __future__ import annotations

import ast
import errno
import re
from pathlib import Path

from mssfs import errors
from mssfs.store import errors as store_errors

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "SEMANTICS.md").read_text()


def test_every_test_the_doc_names_exists() -> None:
    named = re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", DOC)
    assert len(named) > 40
    missing = []
    for path, name in named:
        tree = ast.parse((ROOT / path).read_text())
        functions = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        if name not in functions:
            missing.append(f"{path}::{name}")
    assert missing == []


def _doc_errno_rows() -> dict[str, str]:
    table = DOC.split("| S3 error | errno |")[1].split("\n\n")[0]
    rows = {}
    for line in table.strip().splitlines()[1:]:
        codes, name = (cell.strip() for cell in line.strip("|").split("|"))
        for code in codes.split(","):
            rows[code.strip()] = name
    return rows


def test_the_errno_table_is_the_one_the_code_applies() -> None:
    rows = _doc_errno_rows()
    for code, name in rows.items():
        if code.startswith("any other"):
            exc: BaseException = store_errors.StoreError("x", code="Whatever")
        else:
            cls = store_errors.ERROR_CODE_TO_CLASS[code]
            exc = cls("x", code=code)
        assert errors.errno_for(exc) == getattr(errno, name), code
