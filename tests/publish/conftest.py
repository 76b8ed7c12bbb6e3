"""The publish tests run on both ledger backends: the repo's own SQLite file, and a shared
PostgreSQL database (AFX_LEDGER_URL) where each test's repo keeps its rows under its path."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ledger_database(postgres_url: str) -> str:
    from afx.testing.services import new_database

    return new_database(postgres_url, "afx_ledger_tests")


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which ledger the test's afx uses; AFX_LEDGER_URL is set for the shared one."""
    if request.param == "postgres":
        monkeypatch.setenv("AFX_LEDGER_URL", request.getfixturevalue("ledger_database"))
    else:
        monkeypatch.delenv("AFX_LEDGER_URL", raising=False)
    return str(request.param)
