"""HTTP for every collector: authentication, TLS, retries, and errors translated once.

Secrets (bearer token, password, extra header values, user:password@ in URLs) are read when the
client is built and only ever sent as headers; every message that leaves this module is passed
through `redact()`, so no log line, error or warehouse row can carry them.

Retries: connection errors, timeouts, truncated bodies, 429 and 5xx are retried with exponential
backoff and full jitter (`retries` times); anything else (4xx) is terminal and names the request.
"""

from __future__ import annotations

import base64
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit, urlunsplit

import requests
import urllib3

from core import conventions as c
from core.errors import ConfigError, QueryError, SourceUnavailable
from core.settings import PrometheusSettings

T = TypeVar("T")
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_NOT_CREDENTIALS = frozenset({"accept-encoding", "accept", "user-agent"})
_TRANSIENT = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


@dataclass(frozen=True)
class HttpConfig:
    timeout_s: float = 60.0
    retries: int = 4
    headers: Mapping[str, str] = field(default_factory=dict)
    verify: bool | str = True  # False, True, or a CA bundle path
    secrets: tuple[str, ...] = ()
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """('https://user:pw@host/x') -> ('https://host/x', ('user', 'pw'))."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address: brackets, or the port cannot be told from it
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{urlunsplit(parts._replace(netloc=host))}: not a valid port") from None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit(parts._replace(netloc=netloc)), (unquote(parts.username), unquote(parts.password or ""))


def basic_auth(user: str, password: str) -> str:
    """The Authorization header value for HTTP basic auth (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _read_secret(path: Path, what: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if not value:
        raise ConfigError(f"{path}: the {what} file is empty")
    return value


def config_for(
    prom: PrometheusSettings, timeout_s: float, retries: int, env: Mapping[str, str] | None = None
) -> HttpConfig:
    """Headers and TLS settings for a Prometheus-compatible store (reads the secret files now)."""
    env = os.environ if env is None else env
    # compressing a large answer costs the store more CPU than sending it uncompressed over a LAN
    # (Prometheus: 1.6 s vs 0.3 s for 700k points); on a slow link, turn prometheus.gzip on
    headers = {"Accept-Encoding": "gzip" if prom.gzip else "identity", **prom.headers}
    secrets = [v for v in prom.headers.values() if v]
    if prom.tenant:
        headers[c.HEADER_TENANT] = prom.tenant
    if prom.bearer_token_file is not None:
        token = _read_secret(prom.bearer_token_file, "bearer token")
        headers["Authorization"] = f"Bearer {token}"
        secrets.append(token)
    if prom.basic_auth_username is not None:
        if prom.bearer_token_file is not None:
            raise ConfigError("prometheus: set a bearer token or basic auth, not both")
        password = _basic_password(prom, env)
        headers["Authorization"] = basic_auth(prom.basic_auth_username, password)
        secrets += [password, headers["Authorization"].split(" ", 1)[1]]
    elif prom.basic_auth_password_file or prom.basic_auth_password_env:
        raise ConfigError("prometheus.basic_auth_username is required with a basic-auth password")
    verify: bool | str = True
    if prom.insecure_skip_verify:
        verify = False
    elif prom.ca_file is not None:
        if not prom.ca_file.is_file():
            raise ConfigError(f"{prom.ca_file}: no such CA bundle (prometheus.ca_file)")
        verify = str(prom.ca_file)
    return HttpConfig(timeout_s, retries, headers, verify, tuple(secrets))


def _basic_password(prom: PrometheusSettings, env: Mapping[str, str]) -> str:
    if prom.basic_auth_password_file is not None:
        return _read_secret(prom.basic_auth_password_file, "basic-auth password")
    if prom.basic_auth_password_env:
        value = env.get(prom.basic_auth_password_env, "")
        if not value:
            raise ConfigError(f"${prom.basic_auth_password_env} is unset or empty (prometheus.basic_auth_password_env)")
        return value
    raise ConfigError("basic auth needs prometheus.basic_auth_password_file or prometheus.basic_auth_password_env")


class _Session(requests.Session):
    """A session that drops every configured credential header when a redirect leaves the host.

    requests strips only `Authorization` on such a redirect (Session.rebuild_auth); a store's 302 to
    another host would still carry `X-Api-Key`, a tenant header or any `prometheus.headers` value. The
    host test is requests' own (`should_strip_auth`: another host, or a scheme/port change other than
    http -> https on default ports), so a proxy's same-host redirect still authenticates."""

    def __init__(self, credential_headers: frozenset[str]) -> None:
        super().__init__()
        self.credential_headers = credential_headers

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        if (
            response.request.url
            and prepared_request.url
            and self.should_strip_auth(response.request.url, prepared_request.url)
        ):
            for name in self.credential_headers:
                prepared_request.headers.pop(name, None)
        super().rebuild_auth(prepared_request, response)


def credential_headers(headers: Mapping[str, str]) -> frozenset[str]:
    """Every header gpuledger was configured to send but content negotiation: each may carry a credential
    or a tenant's identity."""
    return frozenset(name for name in headers if name.lower() not in _NOT_CREDENTIALS)


class HttpClient:
    """GET with retries; one requests.Session per thread (Session is not thread-safe)."""

    def __init__(
        self,
        base_url: str,
        config: HttpConfig,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        url, userinfo = split_userinfo(base_url.rstrip("/"))
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ConfigError(f"{url}: not an http(s) URL (gpuledger reads exporters and stores over HTTP only)")
        headers = dict(config.headers)
        secrets = list(config.secrets)
        if userinfo is not None and "Authorization" not in headers:
            headers["Authorization"] = basic_auth(*userinfo)
            secrets += [userinfo[1], headers["Authorization"].split(" ", 1)[1]]
        # a query in the configured URL (`?api_key=...`) is sent with every request and never shown
        parts = urlsplit(url)
        self._query = parse_qsl(parts.query, keep_blank_values=True)
        secrets += [value for _, value in self._query]
        url = urlunsplit(parts._replace(query="", fragment=""))
        self.base_url = url
        self.config = config
        self._headers = headers
        # each secret also as a URL or a form would encode it: servers echo requests in their errors
        forms = {f for s in secrets if s for f in (s, quote(s, safe=""), quote_plus(s, safe=""))}
        self._secrets = tuple(sorted(forms, key=len, reverse=True))
        self._sleep = sleep
        self._rng = rng
        self._local = threading.local()

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = _Session(credential_headers(self._headers))
            session.headers.update(self._headers)
            session.verify = self.config.verify
            if self.config.verify is False:  # chosen explicitly (prometheus.insecure_skip_verify)
                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        return session

    def get(self, path: str, params: Mapping[str, str] | None = None, what: str = "") -> bytes:
        """The body of a 2xx answer; SourceUnavailable after retries, QueryError on 4xx."""
        return self.fetch(path, params, what, lambda body: body)

    def fetch(self, path: str, params: Mapping[str, str] | None, what: str, decode: Callable[[bytes], T]) -> T:
        """GET and decode; a transient failure, including an answer `decode` finds malformed or
        partial (SourceUnavailable), is retried with backoff."""
        url = f"{self.base_url}{path}"
        subject = what or path
        for attempt in range(self.config.retries + 1):
            last = attempt == self.config.retries
            try:
                # verify per request: a session-level setting loses to $REQUESTS_CA_BUNDLE in requests
                response = self._session().get(
                    url,
                    params=[*self._query, *(params or {}).items()],
                    timeout=self.config.timeout_s,
                    verify=self.config.verify,
                )
                body = response.content
            except requests.exceptions.SSLError as exc:
                # an untrusted certificate does not heal by retrying
                raise ConfigError(self.redact(f"{url}: {_describe(exc)}")) from None
            except _TRANSIENT as exc:
                if last:
                    raise SourceUnavailable(self._unavailable(url, subject, _describe(exc))) from None
            else:
                if response.status_code < 300:
                    try:
                        return decode(body)
                    except SourceUnavailable as exc:
                        if last:
                            raise SourceUnavailable(
                                self.redact(f"{exc} (gave up after {attempt + 1} attempts)")
                            ) from None
                elif response.status_code not in RETRY_STATUS:
                    raise QueryError(self.redact(f"{url}: {subject} rejected ({_status(response)})"))
                elif last:
                    raise SourceUnavailable(self._unavailable(url, subject, _status(response)))
            self._sleep(self.backoff(attempt))
        raise AssertionError("unreachable")

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^attempt)] (spreads retries of many clients)."""
        cap = min(self.config.backoff_max_s, self.config.backoff_base_s * (2**attempt))
        return cap * self._rng()

    def _unavailable(self, url: str, subject: str, why: str) -> str:
        tries = self.config.retries + 1
        return self.redact(f"{url}: {why} for {subject} (gave up after {tries} attempt{'s' * (tries > 1)})")


def _describe(exc: Exception) -> str:
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS certificate not trusted or handshake failed (set prometheus.ca_file, or prometheus.insecure_skip_verify)"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"cannot connect ({type(exc).__name__})"
    return f"response cut short ({type(exc).__name__})"


def _status(response: requests.Response) -> str:
    """HTTP status plus the server's own error text (Prometheus: {"error": ...}), one line."""
    detail = ""
    try:
        payload = response.json()
        if isinstance(payload, dict):
            detail = str(payload.get("error") or "")
    except ValueError:
        detail = response.text[:200]
    detail = " ".join(detail.split())[:300]
    return f"HTTP {response.status_code}" + (f": {detail}" if detail else "")
