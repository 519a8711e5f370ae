"""docs/SECURITY.md's RPC -> role table is the one the code enforces."""

from __future__ import annotations

from tests.harness import ROOT
from tests.security.security_doc import END, START, render


def test_security_doc_table_matches_the_policies():
    text = (ROOT / "docs" / "SECURITY.md").read_text()
    assert START in text and END in text, "docs/SECURITY.md lost its generated table markers"
    table = text[text.index(START) : text.index(END) + len(END)]
    assert table == render(), "docs/SECURITY.md is stale: run `.venv/bin/python -m tests.security.security_doc`"
