"""Authentication, TLS, tenants and store flavors: what is sent, and that no secret is ever kept.

A bearer token, an extra header and a tenant go through a local HTTPS store (a recording proxy in
front of the real Prometheus); basic auth and TLS are checked against a real Prometheus started
with --web.config.file. After every run the token or password is searched for in the command's
output, in every text column of every warehouse table, and in the warehouse file's bytes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import yaml
from click.testing import CliRunner, Result

from app.cli import main
from collectors.metrics import http
from core.errors import QueryError
from core.settings import PrometheusSettings
from core.store.warehouse import open_warehouse
from tests import servers
from tests.conftest import require_binary
from tests.fake_store import FakeStore, serving

TOKEN = "tok-3f9a1c0e7b5d4a2e9c8b7a6f5e4d3c2b"
PASSWORD = "pw-d41d8cd98f00b204e9800998ecf8427e"
HEADER_SECRET = "hdr-0cc175b9c0f1b6a831c399e269772661"
WINDOW = ("--start", "2026-11-02T10:00:00Z", "--end", "2026-11-02T11:00:00Z")


@pytest.fixture(scope="session")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA bundle)."""
    base = tmp_path_factory.mktemp("tls")
    cert, key = base / "cert.pem", base / "key.pem"
    subprocess.run(
        [require_binary("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


def _run(tmp_path: Path, settings: dict, *args: str, env: dict[str, str] | None = None) -> Result:
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump(settings))
    argv = ["--config", str(config), "--warehouse", str(tmp_path / "wh.duckdb"), "collect", "prometheus", *args]
    return CliRunner().invoke(main, argv, env=env)


def _assert_kept_nowhere(secret: str, result: Result, wh: Path) -> None:
    assert secret not in result.output
    if not wh.exists():
        return
    with open_warehouse(wh, read_only=True) as con:
        columns = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE data_type IN ('VARCHAR', 'JSON') OR data_type LIKE '%[]'"
        ).fetchall()
        for table, column in columns:
            hits = con.execute(
                f'SELECT count(*) FROM "{table}" WHERE CAST("{column}" AS VARCHAR) LIKE ?', [f"%{secret}%"]
            )
            assert hits.fetchall() == [(0,)], (table, column)
    for path in wh.parent.glob(wh.name + "*"):
        assert secret.encode() not in path.read_bytes()


def _collect_settings() -> dict:
    return {"collect": {"pushdown": "query", "retries": 0, "cluster": "sim-us-east-1"}}


def test_a_bearer_token_tenant_and_extra_header_are_sent_over_verified_tls_and_kept_nowhere(
    prometheus_url: str, tls_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = tls_pair
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    store = FakeStore(prometheus_url, require_auth=f"Bearer {TOKEN}")
    settings = _collect_settings() | {
        "prometheus": {
            "flavor": "mimir",
            "tenant": "team-gpu",
            "bearer_token_file": str(token_file),
            "ca_file": str(cert),
            "headers": {"X-Debug-Secret": HEADER_SECRET},
        }
    }
    with serving(store, tls=(str(cert), str(key))) as url:
        result = _run(tmp_path, settings, "--url", url, *WINDOW)
    assert result.exit_code == 0, result.output
    assert "prometheus:https://127.0.0.1:" in result.output and "#tenant=team-gpu" in result.output
    sent = {
        (s.headers.get("Authorization"), s.headers.get("X-Scope-OrgID"), s.headers.get("X-Debug-Secret"))
        for s in store.seen
    }
    assert sent == {(f"Bearer {TOKEN}", "team-gpu", HEADER_SECRET)}
    for secret in (TOKEN, HEADER_SECRET):
        _assert_kept_nowhere(secret, result, tmp_path / "wh.duckdb")


def test_a_rejected_token_is_a_terminal_error_that_does_not_repeat_it(
    prometheus_url: str, tls_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = tls_pair
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    store = FakeStore(prometheus_url, require_auth="Bearer something-else")
    settings = _collect_settings() | {"prometheus": {"bearer_token_file": str(token_file), "ca_file": str(cert)}}
    with serving(store, tls=(str(cert), str(key))) as url:
        result = _run(tmp_path, settings, "--url", url, *WINDOW)
    assert result.exit_code == 2 and "HTTP 401" in result.output
    _assert_kept_nowhere(TOKEN, result, tmp_path / "wh.duckdb")


def test_an_untrusted_certificate_stops_at_once_unless_verification_is_explicitly_off(
    prometheus_url: str, tls_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    with serving(FakeStore(prometheus_url), tls=(str(tls_pair[0]), str(tls_pair[1]))) as url:
        refused = _run(tmp_path, _collect_settings(), "--url", url, *WINDOW)
        allowed = _run(
            tmp_path, _collect_settings() | {"prometheus": {"insecure_skip_verify": True}}, "--url", url, *WINDOW
        )
    assert refused.exit_code == 2 and "TLS certificate not trusted" in refused.output
    assert allowed.exit_code == 0, allowed.output


@pytest.fixture(scope="module")
def secured_prometheus(
    prometheus_tsdb: Path, tls_pair: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real Prometheus behind TLS and basic auth (--web.config.file), on a copy of the test TSDB."""
    base = tmp_path_factory.mktemp("secured")
    tsdb = base / "tsdb"
    shutil.copytree(
        prometheus_tsdb, tsdb, ignore=shutil.ignore_patterns("wal", "chunks_head", "lock", "queries.active")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # bcrypt hashes for Prometheus' basic_auth_users (no other bcrypt on this machine)

        hashed = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH))
    web = base / "web.yml"
    cert, key = tls_pair
    web.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {"cert_file": str(cert), "key_file": str(key)},
                "basic_auth_users": {"gpuledger": hashed},
            }
        )
    )
    with servers.prometheus(
        require_binary("prometheus"), tsdb, base, web_config=web, verify=str(cert), auth=("gpuledger", PASSWORD)
    ) as url:
        yield url


@pytest.mark.parametrize("how", ["password file", "password environment variable", "user:password@ in the URL"])
def test_basic_auth_over_tls_against_a_real_prometheus_keeps_the_password_nowhere(
    how: str, secured_prometheus: str, tls_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    prometheus: dict[str, object] = {"ca_file": str(tls_pair[0])}
    url, env = secured_prometheus, None
    if how == "password file":
        (tmp_path / "pw").write_text(PASSWORD)
        prometheus |= {"basic_auth_username": "gpuledger", "basic_auth_password_file": str(tmp_path / "pw")}
    elif how == "password environment variable":
        prometheus |= {"basic_auth_username": "gpuledger", "basic_auth_password_env": "GPULEDGER_TEST_PW"}
        env = {"GPULEDGER_TEST_PW": PASSWORD}
    else:
        url = secured_prometheus.replace("https://", f"https://gpuledger:{PASSWORD}@")
    result = _run(tmp_path, _collect_settings() | {"prometheus": prometheus}, "--url", url, *WINDOW, env=env)
    assert result.exit_code == 0, result.output
    assert f"prometheus:{secured_prometheus} " in result.output
    _assert_kept_nowhere(PASSWORD, result, tmp_path / "wh.duckdb")


def test_a_wrong_password_is_refused_by_prometheus_and_not_repeated(
    secured_prometheus: str, tls_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    wrong = PASSWORD[::-1]
    url = secured_prometheus.replace("https://", f"https://gpuledger:{wrong}@")
    result = _run(tmp_path, _collect_settings() | {"prometheus": {"ca_file": str(tls_pair[0])}}, "--url", url, *WINDOW)
    assert result.exit_code == 2 and "HTTP 401" in result.output
    _assert_kept_nowhere(wrong, result, tmp_path / "wh.duckdb")


FLAVOR_PARAMS = {
    "thanos": {"partial_response": "false", "dedup": "true"},
    "victoriametrics": {"nocache": "1"},
    "prometheus": {},
}


@pytest.mark.parametrize("flavor", list(FLAVOR_PARAMS))
def test_each_flavor_sends_the_parameters_that_make_its_store_answer_like_prometheus(
    flavor: str, prometheus_url: str, tmp_path: Path
) -> None:
    store = FakeStore(prometheus_url)
    with serving(store) as url:
        result = _run(tmp_path, _collect_settings(), "--url", url, "--flavor", flavor, *WINDOW)
    assert result.exit_code == 0, result.output
    expected = FLAVOR_PARAMS[flavor]
    # values: metric names; query: raw samples reading kube-state-metrics' scrape interval
    own = {"query_range": {"query", "start", "end", "step"}, "values": {"start", "end"}, "query": {"query", "time"}}
    assert {seen.path.rsplit("/", 1)[-1] for seen in store.seen} == set(own)
    for seen in store.seen:
        assert {k: seen.params.get(k) for k in expected} == expected
        assert set(seen.params) - set(expected) == own[seen.path.rsplit("/", 1)[-1]]


MISCONFIGURED = {
    "a missing token file": ({"bearer_token_file": "/nonexistent/token"}, "cannot read the bearer token"),
    "an empty token file": ({"bearer_token_file": "EMPTY"}, "the bearer token file is empty"),
    "a password without a user": ({"basic_auth_password_env": "X"}, "basic_auth_username is required"),
    "a user without a password": ({"basic_auth_username": "u"}, "basic auth needs"),
    "an unset password variable": (
        {"basic_auth_username": "u", "basic_auth_password_env": "GPULEDGER_UNSET_VARIABLE"},
        "$GPULEDGER_UNSET_VARIABLE is unset or empty",
    ),
    "token and basic auth together": (
        {"bearer_token_file": "TOKEN", "basic_auth_username": "u", "basic_auth_password_env": "X"},
        "not both",
    ),
    "a missing CA bundle": ({"ca_file": "/nonexistent/ca.pem"}, "no such CA bundle"),
}


@pytest.mark.parametrize("case", list(MISCONFIGURED), ids=list(MISCONFIGURED))
def test_misconfigured_credentials_are_one_clear_error_before_any_request(case: str, tmp_path: Path) -> None:
    prometheus, message = MISCONFIGURED[case]
    (tmp_path / "empty").write_text("")
    (tmp_path / "token").write_text(TOKEN)
    paths = {"EMPTY": str(tmp_path / "empty"), "TOKEN": str(tmp_path / "token")}
    prometheus = {k: paths.get(v, v) for k, v in prometheus.items()}
    result = _run(tmp_path, _collect_settings() | {"prometheus": prometheus}, "--url", "http://127.0.0.1:9", *WINDOW)
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and TOKEN not in result.output


class _Recorder(servers.StubHandler):
    """Records each request's headers; `redirect_to` (a base URL) answers 302 to the same path there."""

    seen: list[tuple[str, dict[str, str]]]
    redirect_to: str | None = None

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        if self.redirect_to is not None:
            self.send_response(302)
            self.send_header("Location", self.redirect_to + self.path)
            self.end_headers()
            return
        self.reply(401, b'{"status":"error","errorType":"unauthorized","error":"no credentials"}')


@contextmanager
def _recording(host: str, redirect_to: str | None = None) -> Iterator[tuple[str, list[tuple[str, dict[str, str]]]]]:
    seen: list[tuple[str, dict[str, str]]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen, "redirect_to": redirect_to})
    with servers.stub(handler, host) as base:
        yield base, seen


REDIRECT_SETTINGS = {
    "prometheus": {"headers": {"X-Api-Key": HEADER_SECRET}, "tenant": "team-a", "bearer_token_file": "TOKEN_FILE"},
    "collect": {"retries": 0},
}


def _redirect_settings(tmp_path: Path) -> dict:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    settings = yaml.safe_load(yaml.safe_dump(REDIRECT_SETTINGS))
    settings["prometheus"]["bearer_token_file"] = str(token)
    return settings


def test_a_redirect_to_another_host_carries_no_configured_credential_header(tmp_path: Path) -> None:
    """The store answers 302 to another host (127.0.0.2): the header, the tenant and the token stay behind,
    and the other host's refusal is a clear error naming it."""
    with _recording("127.0.0.2") as (elsewhere, seen_elsewhere), _recording("127.0.0.1", elsewhere) as (store, seen):
        result = _run(tmp_path, _redirect_settings(tmp_path), "--url", store, *WINDOW)
    assert seen and seen[0][1]["x-api-key"] == HEADER_SECRET  # the store itself was sent them
    assert seen_elsewhere, "the redirect was followed"
    for _, headers in seen_elsewhere:
        assert {"x-api-key", "x-scope-orgid", "authorization"}.isdisjoint(headers)
    assert result.exit_code == 2, result.output
    assert f"{elsewhere}/api/v1/" in result.output or "127.0.0.1" in result.output
    _assert_kept_nowhere(HEADER_SECRET, result, tmp_path / "wh.duckdb")
    _assert_kept_nowhere(TOKEN, result, tmp_path / "wh.duckdb")


def test_a_redirect_to_another_port_of_the_same_host_carries_no_credentials(tmp_path: Path) -> None:
    """Another port is another origin (another server may listen there)."""
    with _recording("127.0.0.1") as (target, seen_target), _recording("127.0.0.1", target + "/prefix") as (store, _):
        prom = PrometheusSettings(**_redirect_settings(tmp_path)["prometheus"])
        client = http.HttpClient(store, http.config_for(prom, 5, 0))
        with pytest.raises(QueryError, match="HTTP 401"):
            client.get("/api/v1/query", {"query": "up"})
    path, headers = seen_target[0]
    assert path.startswith("/prefix/api/v1/query")
    assert {"x-api-key", "x-scope-orgid", "authorization"}.isdisjoint(headers)


def test_a_redirect_to_the_same_origin_keeps_the_credentials(tmp_path: Path) -> None:
    seen: list[tuple[str, dict[str, str]]] = []

    class SameOrigin(_Recorder):
        def do_GET(self) -> None:  # noqa: N802
            if not self.path.startswith("/prefix"):  # a relative Location: this very host and port
                self.send_response(302)
                self.send_header("Location", "/prefix" + self.path)
                self.end_headers()
                return
            super().do_GET()

    SameOrigin.seen = seen  # only the redirected request records: the first one returns before super()
    with servers.stub(SameOrigin) as base:
        prom = PrometheusSettings(**_redirect_settings(tmp_path)["prometheus"])
        client = http.HttpClient(base, http.config_for(prom, 5, 0))
        with pytest.raises(QueryError, match="HTTP 401"):
            client.get("/api/v1/query", {"query": "up"})
    path, headers = seen[0]
    assert path.startswith("/prefix/api/v1/query")
    assert headers["x-api-key"] == HEADER_SECRET
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["x-scope-orgid"] == "team-a"


def test_a_key_in_the_url_query_is_sent_every_time_and_never_shown_in_any_encoding(tmp_path: Path) -> None:
    """`?api_key=...` in prometheus.url, and a header whose value a URL would encode: the store echoes the
    request (as proxies do) in its error; the message names the store and holds neither in any form."""
    key, header = "s3cr3t+k/ey=", "hdr+val/ue=="
    seen: list[str] = []

    class Echo(servers.StubHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.path)
            body = json.dumps({"status": "error", "error": f"bad request {self.path} {self.headers.get('X-Api-Key')}"})
            self.reply(400, body.encode())

    with servers.stub(Echo) as base:
        url = f"{base}/prom?api_key={quote(key, safe='')}"
        settings = {"prometheus": {"headers": {"X-Api-Key": header}}, "collect": {"retries": 0}}
        result = _run(tmp_path, settings, "--url", url, *WINDOW)
    assert seen and all(f"api_key={quote(key, safe='')}" in path for path in seen)  # sent with every request
    assert result.exit_code == 2, result.output
    assert f"{base.removeprefix('http://')}/prom" in result.output
    for secret in (key, header):
        for form in (secret, quote(secret, safe=""), quote_plus(secret, safe="")):
            assert form not in result.output
    _assert_kept_nowhere(key, result, tmp_path / "wh.duckdb")
    _assert_kept_nowhere(quote(key, safe=""), result, tmp_path / "wh.duckdb")
