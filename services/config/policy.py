"""Who may call which ConfigService RPC (enforced by chassis.auth's interceptor)."""

from __future__ import annotations

from chassis.auth import Access, Rule

_SERVICE = "/speako.config.v1.ConfigService"

POLICY: dict[str, Rule] = {
    f"{_SERVICE}/CreateAgent": Rule(Access.EDIT),
    f"{_SERVICE}/GetAgent": Rule(Access.READ),
    f"{_SERVICE}/ListAgents": Rule(Access.READ),
    f"{_SERVICE}/GetDraft": Rule(Access.READ),
    f"{_SERVICE}/UpdateDraft": Rule(Access.EDIT),
    f"{_SERVICE}/ValidateDraft": Rule(Access.READ),
    f"{_SERVICE}/PublishDraft": Rule(Access.PUBLISH),
    # The publisher reads versions with its service token (READ across tenants).
    f"{_SERVICE}/GetVersion": Rule(Access.READ),
    f"{_SERVICE}/ListVersions": Rule(Access.READ),
    f"{_SERVICE}/DiffVersions": Rule(Access.READ),
    f"{_SERVICE}/RestoreVersion": Rule(Access.EDIT),
}
