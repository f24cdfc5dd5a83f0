"""Who may see which team's bill: a pure function of the logged-in identity and the settings.

The dashboard asks this module once per run and applies the answer to every frame it shows and
every CSV it offers, so a page cannot forget it. Rules (settings `dashboard.*`):
  - `auth: none` (the default, loopback only): everyone is an admin.
  - `auth: oidc`: a user who is not logged in sees nothing; `admin_users` / `admin_groups` see every
    team and every page; anyone else sees the union of `user_teams[their email or subject]` and
    `group_teams[each of their groups]`, and only the Overview and Teams pages. The `__idle__`,
    `__unallocated__` and `__shared__` rows belong to no team, so only admins see them.
Emails compare case-insensitively (providers differ in how they case them); subjects, groups and
team names compare exactly.
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


@dataclass(frozen=True)
class Identity:
    logged_in: bool
    email: str | None = None
    subject: str | None = None
    name: str | None = None
    groups: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.email or self.name or self.subject or "anonymous"


@dataclass(frozen=True)
class Scope:
    admin: bool
    teams: frozenset[str] = frozenset()

    def allows(self, team: object) -> bool:
        return self.admin or (isinstance(team, str) and team in self.teams)

    def restrict(self, frame: pd.DataFrame, column: str = "team") -> pd.DataFrame:
        """Only the rows this scope may see (every row for an admin; none when the column is missing)."""
        if self.admin:
            return frame
        if column not in frame:
            return frame.iloc[0:0]
        return frame[frame[column].isin(sorted(self.teams))]


EVERYTHING = Scope(admin=True)
NOTHING = Scope(admin=False)


def identity_from(user: Mapping[str, Any], groups_claim: str = "groups") -> Identity:
    """Streamlit's st.user (the ID token's claims) -> Identity. Groups may be a list or a string."""
    raw = user.get(groups_claim) or ()
    groups = (raw,) if isinstance(raw, str) else tuple(str(g) for g in raw if g is not None)
    return Identity(
        logged_in=bool(user.get("is_logged_in")),
        email=_text(user.get("email")),
        subject=_text(user.get("sub")),
        name=_text(user.get("name")),
        groups=groups,
    )


def scope_for(identity: Identity, policy: DashboardSettings) -> Scope:
    if policy.auth == "none":
        return EVERYTHING
    if not identity.logged_in:
        return NOTHING
    keys = _user_keys(identity)
    if keys & _user_keys_of(policy.admin_users) or set(identity.groups) & set(policy.admin_groups):
        return EVERYTHING
    teams: set[str] = set()
    for user, allowed in policy.user_teams.items():
        if _user_keys_of([user]) & keys:
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


def _user_keys(identity: Identity) -> set[str]:
    keys = {identity.subject} if identity.subject else set()
    if identity.email:
        keys.add(identity.email.casefold())
    return keys


def _user_keys_of(users: Iterable[str]) -> set[str]:
    return {u.casefold() if "@" in u else u for u in users}
