"""The publish tests run on the repo's own SQLite ledger; those marked `both_ledgers` (what
the ledger decides: once, renames, approvals, schedules, concurrent runs) also on a shared
PostgreSQL database (AFX_LEDGER_URL) where each test's repo keeps its rows under its path.
(Every test on both took two minutes more of `make test` for little: the rest does not
depend on where the ledger is.)"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ledger_database(postgres_url: str) -> str:
    from afx.testing.services import new_database

    return new_database(postgres_url, "afx_ledger_tests")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "ledger_backend" in metafunc.fixturenames:
        both = metafunc.definition.get_closest_marker("both_ledgers") is not None
        metafunc.parametrize("ledger_backend", ["sqlite", "postgres"] if both else ["sqlite"], indirect=True)


@pytest.fixture
def ledger_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which ledger the test's afx uses; AFX_LEDGER_URL is set for the shared one."""
    if request.param == "postgres":
        monkeypatch.setenv("AFX_LEDGER_URL", request.getfixturevalue("ledger_database"))
    else:
        monkeypatch.delenv("AFX_LEDGER_URL", raising=False)
    return str(request.param)
