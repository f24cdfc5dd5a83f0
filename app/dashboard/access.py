"""Who may see which team's bill: a pure function of the logged-in identity and the settings.

The dashboard asks this module once per run and applies the answer to every frame it shows and
every CSV it offers, so a page cannot forget it. Rules (settings `dashboard.*`):
  - `auth: none` (the default, loopback only): everyone is an admin.
  - `auth: oidc`: a user who is not logged in sees nothing; `admin_users` / `admin_groups` see every
    team and every page; anyone else sees the union of `user_teams[their user]` and
    `group_teams[each of their groups]`, and only the Overview and Teams pages. The `__idle__`,
    `__unallocated__` and `__shared__` rows belong to no team, so only admins see them.
A user is the value of one declared claim (`dashboard.user_claim`, default `email`), never another: a
subject that looks like an email is not that email. An email counts only when the token says it was
verified (`email_verified: true`); anyone can put any address on an unverified account at most
providers. Emails compare case-insensitively (providers differ in how they case them); other claims,
groups and team names compare exactly.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError
from core.settings import DashboardSettings

if TYPE_CHECKING:  # pandas costs half a second at import: every `gpuledger` command would pay it
    import pandas as pd

# Pages a non-admin may open: their teams' bills. Fleet-wide pages (health, inference, drift, alerts,
# exports with every team's files, data status) are for admins.
TEAM_PAGES = ("overview", "teams")
EMAIL_CLAIM = "email"


@dataclass(frozen=True)
class Identity:
    logged_in: bool
    user: str | None = None  # the declared claim's value (an email only when verified), as compared
    name: str | None = None  # for display only
    groups: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.user or self.name or "anonymous"


@dataclass(frozen=True)
class Scope:
    admin: bool
    teams: frozenset[str] = frozenset()

    def restrict(self, frame: pd.DataFrame, column: str = "team") -> pd.DataFrame:
        """Only the rows this scope may see (every row for an admin; none when the column is missing)."""
        if self.admin:
            return frame
        if column not in frame:
            return frame.iloc[0:0]
        return frame[frame[column].isin(sorted(self.teams))]


EVERYTHING = Scope(admin=True)
NOTHING = Scope(admin=False)


def identity_from(user: Mapping[str, Any], groups_claim: str = "groups", user_claim: str = "email") -> Identity:
    """Streamlit's st.user (the ID token's claims) -> Identity. Groups may be a list or a string."""
    raw = user.get(groups_claim) or ()
    groups = (raw,) if isinstance(raw, str) else tuple(str(g) for g in raw if g is not None)
    value = _text(user.get(user_claim))
    if user_claim == EMAIL_CLAIM and not _verified(user.get("email_verified")):
        value = None
    return Identity(
        logged_in=bool(user.get("is_logged_in")),
        user=_user_key(value, user_claim) if value else None,
        name=_text(user.get("name")),
        groups=groups,
    )


def _verified(flag: object) -> bool:
    # Cognito and some proxies send the boolean claim as a string
    return flag is True or (isinstance(flag, str) and flag.strip().lower() == "true")


def scope_for(identity: Identity, policy: DashboardSettings) -> Scope:
    if policy.auth == "none":
        return EVERYTHING
    if not identity.logged_in:
        return NOTHING
    claim = policy.user_claim
    me = identity.user
    if me is not None and me in {_user_key(u, claim) for u in policy.admin_users}:
        return EVERYTHING
    if set(identity.groups) & set(policy.admin_groups):
        return EVERYTHING
    teams: set[str] = set()
    for user, allowed in policy.user_teams.items():
        if me is not None and _user_key(user, claim) == me:
            teams.update(allowed)
    for group in identity.groups:
        teams.update(policy.group_teams.get(group, ()))
    return Scope(admin=False, teams=frozenset(teams))


def pages_for(scope: Scope, pages: Iterable[str]) -> list[str]:
    return [p for p in pages if scope.admin or p in TEAM_PAGES]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere


def check_exposure(policy: DashboardSettings, host: str) -> None:
    """Refuse to expose every team's bill without a login (validated before the server starts)."""
    if policy.auth == "oidc" and policy.secrets_file is not None and not policy.secrets_file.is_file():
        raise ConfigError(f"{policy.secrets_file}: dashboard.secrets_file does not exist")
    if is_loopback(host) or policy.auth == "oidc" or policy.allow_unauthenticated:
        return
    raise ConfigError(
        f"dashboard on {host} would show every team's bill to anyone who reaches it: set dashboard.auth: oidc "
        "(with dashboard.secrets_file), or dashboard.allow_unauthenticated: true behind an authenticating proxy"
    )


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _user_key(value: str, claim: str) -> str:
    return value.casefold() if claim == EMAIL_CLAIM else value
