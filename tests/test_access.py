"""Dashboard access control: the authorization layer as a pure function, then its wiring in the app
with stub identities (AppTest.user), including what the CSV download of a non-admin holds."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app.dashboard import access
from core import conventions as c
from core.errors import ConfigError
from core.settings import DashboardSettings

APP = Path(__file__).resolve().parents[1] / "app" / "dashboard"
POLICY = DashboardSettings(
    auth="oidc",
    admin_users=["Alice@Example.com"],
    admin_groups=["platform"],
    user_teams={"bob@example.com": ["nlp"], "sub-123": ["research"]},
    group_teams={"vision-eng": ["vision"], "ml-all": ["nlp", "ads"]},
)


def _verified(claims: dict) -> dict:
    return {"is_logged_in": True, "email_verified": True, **claims}


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ({"is_logged_in": False, "email": "alice@example.com", "email_verified": True}, access.NOTHING),
        (_verified({"email": "alice@example.com"}), access.EVERYTHING),  # emails compare caselessly
        (_verified({"email": "carol@example.com", "groups": ["platform"]}), access.EVERYTHING),
        (_verified({"email": "BOB@example.com"}), access.Scope(False, frozenset({"nlp"}))),
        (
            _verified({"email": "bob@example.com", "groups": ["vision-eng", "ml-all"]}),
            access.Scope(False, frozenset({"nlp", "vision", "ads"})),
        ),
        (_verified({"email": "bob@example.com", "email_verified": "true"}), access.Scope(False, frozenset({"nlp"}))),
        ({"is_logged_in": True, "email": "bob@example.com", "email_verified": False}, access.NOTHING),
        ({"is_logged_in": True, "email": "bob@example.com"}, access.NOTHING),
        (
            {"is_logged_in": True, "email": "bob@example.com", "email_verified": False, "groups": ["vision-eng"]},
            access.Scope(False, frozenset({"vision"})),
        ),
        ({"is_logged_in": True, "sub": "alice@example.com"}, access.NOTHING),
        (_verified({"sub": "sub-123", "groups": "vision-eng"}), access.Scope(False, frozenset({"vision"}))),
        (_verified({"email": "mallory@example.com", "groups": ["Platform"]}), access.NOTHING),
        (_verified({"email": "admin@example.com\n"}), access.NOTHING),
    ],
    ids=[
        "logged out",
        "admin user",
        "admin group",
        "user mapped to a team",
        "user and groups add up",
        "verified flag as a string",
        "unverified email",
        "email without the verified claim",
        "unverified email keeps its groups",
        "subject that looks like an admin email",
        "subject is not the declared claim",
        "group case differs",
        "look-alike email",
    ],
)
def test_a_users_scope_is_the_union_of_their_mappings_and_admins_see_everything(
    user: dict, expected: access.Scope
) -> None:
    assert access.scope_for(access.identity_from(user), POLICY) == expected


BY_SUBJECT = DashboardSettings(
    auth="oidc",
    user_claim="sub",
    admin_users=["admin-sub"],
    user_teams={"sub-123": ["research"], "bob@example.com": ["nlp"]},
)


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ({"is_logged_in": True, "sub": "sub-123"}, access.Scope(False, frozenset({"research"}))),
        ({"is_logged_in": True, "sub": "SUB-123"}, access.NOTHING),  # other claims compare exactly
        ({"is_logged_in": True, "sub": "admin-sub"}, access.EVERYTHING),
        # an email, even verified, is not the declared claim
        ({"is_logged_in": True, "sub": "x", "email": "bob@example.com", "email_verified": True}, access.NOTHING),
        ({"is_logged_in": True, "email": "admin-sub", "email_verified": True}, access.NOTHING),
    ],
    ids=[
        "subject mapped",
        "subject case differs",
        "admin subject",
        "verified email ignored",
        "email equal to a subject",
    ],
)
def test_with_a_declared_user_claim_only_that_claim_names_the_user(user: dict, expected: access.Scope) -> None:
    identity = access.identity_from(user, BY_SUBJECT.groups_claim, BY_SUBJECT.user_claim)
    assert access.scope_for(identity, BY_SUBJECT) == expected


def test_without_auth_everyone_is_an_admin_and_only_loopback_may_serve_that() -> None:
    open_policy = DashboardSettings()
    assert access.scope_for(access.identity_from({}), open_policy) == access.EVERYTHING
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.5"):
        access.check_exposure(open_policy, host)
    for host in ("0.0.0.0", "::", "10.0.0.4", "gpuledger.example.com"):
        with pytest.raises(ConfigError, match="every team's bill"):
            access.check_exposure(open_policy, host)
    access.check_exposure(POLICY, "0.0.0.0")
    access.check_exposure(DashboardSettings(allow_unauthenticated=True), "0.0.0.0")


def test_a_scope_keeps_only_its_teams_rows_and_never_the_fleet_pools() -> None:
    frame = pd.DataFrame({"team": ["nlp", "vision", c.IDLE, c.UNALLOCATED, None], "cost_usd": [1, 2, 3, 4, 5]})
    nlp = access.Scope(False, frozenset({"nlp"}))
    assert nlp.restrict(frame)["team"].tolist() == ["nlp"]
    assert access.EVERYTHING.restrict(frame).equals(frame)
    assert access.NOTHING.restrict(frame).empty
    assert nlp.restrict(pd.DataFrame({"node_pool": ["a"]})).empty  # no team column: nothing to show
    assert access.pages_for(nlp, ["overview", "teams", "health", "exports", "status"]) == ["overview", "teams"]


def test_the_dashboard_refuses_to_bind_beyond_loopback_without_login(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    result = run_cli("--warehouse", str(tmp_path / "wh.duckdb"), "dashboard", "--host", "0.0.0.0")
    assert result.exit_code == 2 and "dashboard.auth: oidc" in result.output


def _app(monkeypatch: pytest.MonkeyPatch, warehouse: Path, tmp_path: Path, user: dict, page: str = "") -> AppTest:
    config = tmp_path / "s.yaml"
    config.write_text(
        "dashboard:\n  auth: oidc\n  admin_users: [alice@example.com]\n"
        "  user_teams: {bob@example.com: [nlp]}\n  group_teams: {vision-eng: [vision]}\n"
    )
    monkeypatch.setenv("GPULEDGER_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("GPULEDGER_CONFIG", str(config))
    at = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=120)
    at.user = user
    at.query_params["start"], at.query_params["end"] = "2026-11-02", "2026-11-02"
    at.run()
    if page:
        at.switch_page(str(APP / "pages" / f"{page}.py"))
        at.run()
    assert not at.exception, at.exception
    return at


def test_a_logged_out_visitor_sees_a_login_button_and_no_numbers(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path, tmp_path: Path
) -> None:
    at = _app(monkeypatch, direct_warehouse, tmp_path, {"is_logged_in": False})
    assert [b.label for b in at.button] == ["Log in"]
    assert not at.metric and not at.dataframe


def test_a_team_member_sees_only_their_teams_bill_and_downloads_only_it(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path, tmp_path: Path
) -> None:
    bob = {"is_logged_in": True, "email": "bob@example.com", "email_verified": True, "groups": ["vision-eng"]}
    overview = _app(monkeypatch, direct_warehouse, tmp_path, bob)
    assert set(overview.dataframe[0].value["team"]) == {"nlp", "vision"}
    assert set(overview.sidebar.multiselect[1].options) == {"nlp", "vision"}  # the team filter
    downloads = _capture_downloads(monkeypatch)
    teams = _app(monkeypatch, direct_warehouse, tmp_path, bob, "teams")
    assert teams.selectbox[0].options == ["nlp", "vision"]
    shown = teams.dataframe[0].value
    (name, data), *_ = [(n, d) for n, d in downloads.items() if n.startswith("gpuledger-nlp-")]
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert len(rows) == len(shown) and {r["workload"] for r in rows} == set(shown["workload"])
    assert all("vision" not in r["namespace"] for r in rows)
    for page in ("exports", "status"):  # every team's files, and the sources: not in bob's navigation
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            _app(monkeypatch, direct_warehouse, tmp_path, bob, page)


def _capture_downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """File name -> bytes of every download button the app renders (AppTest keeps no media)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    seen: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def spy(self, path_or_data, mimetype, kind, filename=None):  # type: ignore[no-untyped-def]
        if filename and isinstance(path_or_data, bytes):
            seen[filename] = path_or_data
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", spy)
    return seen


def test_an_admin_sees_every_team_and_every_page(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path, tmp_path: Path
) -> None:
    alice = {"is_logged_in": True, "email": "alice@example.com", "email_verified": True}
    overview = _app(monkeypatch, direct_warehouse, tmp_path, alice)
    assert {c.IDLE, "nlp", "vision"} <= set(overview.dataframe[0].value["team"])
    status = _app(monkeypatch, direct_warehouse, tmp_path, alice, "status")
    assert "Data status" in [t.value for t in status.title]
