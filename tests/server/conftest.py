"""A real `afx serve` for the tests of this folder, always stopped at the end.

    def test_x(api_server):            # module-scoped: one server per test module
        key = api_server.new_key(credits=5)    # a fresh account: its own jobs and credits
        httpx.get(api_server.url + "/account", headers=api_server.auth(key))

    def test_y(api_servers):           # more servers with their own flags or environment
        slow = api_servers("--workers", "1", env={"AFX_TEST_SLEEP": "render:30"})

`url` is the API's base URL as the reference writes it (http://127.0.0.1:PORT/v1); `origin`
is the same without /v1. Jobs run the cheap PUBLISHING pipeline (no media, no network).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.serverproc import Server


class ApiServer:
    def __init__(self, server: Server, key: str) -> None:
        self.server = server
        self.origin = server.url
        self.url = server.url + "/v1"
        self.key = key
        self.data_dir: Path = server.data_dir
        self.log: Path = server.log

    @property
    def proc(self):  # type: ignore[no-untyped-def]
        return self.server.proc

    def new_key(self, credits: int = 100, plan: str = "operate", account: str | None = None) -> str:
        """A key for a new account (or another key for `account`)."""
        return self.server.key(credits=credits, plan=plan, account=account)

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def client(self, key: str | None = None) -> httpx.Client:
        """An httpx client on the API's base URL with the key (the fixture's by default)."""
        return httpx.Client(base_url=self.url, headers=self.auth(key), timeout=30)

    def env(self, key: str | None = None) -> dict[str, str]:
        """AFX_API_URL and AFX_API_KEY for `afx push` / `afx remote`."""
        return {"AFX_API_URL": self.url, "AFX_API_KEY": key or self.key}

    def stop(self) -> None:
        self.server.stop()


def start_api_server(data_dir: Path, *args: str, env: dict[str, str] | None = None, credits: int = 100) -> ApiServer:
    """Start one; the caller stops it (the fixtures below do)."""
    server = Server(data_dir, *args, env=env)
    try:
        server.start()
        return ApiServer(server, server.key(credits=credits))
    except BaseException:
        server.stop()
        raise


DEFAULT_ARGS = ("--rate-limit", "100000", "--tick", "0.2")


@pytest.fixture(scope="module")
def api_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ApiServer]]:
    """start(*flags, env=None, credits=100) -> ApiServer; every one is stopped after the module."""
    started: list[ApiServer] = []

    def start(*args: str, env: dict[str, str] | None = None, credits: int = 100) -> ApiServer:
        server = start_api_server(tmp_path_factory.mktemp("api") / "data", *_with_defaults(args), env=env,
                                  credits=credits)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="module")
def api_server(api_servers: Callable[..., ApiServer]) -> ApiServer:
    """One `afx serve` for the module: 2 workers, no practical rate limit, 100 credits on .key."""
    return api_servers()


def _with_defaults(args: tuple[str, ...]) -> list[str]:
    """The given flags, plus each default flag (with its value) the caller did not set."""
    flags = list(args)
    for i in range(0, len(DEFAULT_ARGS), 2):
        if DEFAULT_ARGS[i] not in flags:
            flags += [DEFAULT_ARGS[i], DEFAULT_ARGS[i + 1]]
    return flags
