"""Who may call what on the activation process (chassis.auth checks tenants of every name)."""

from __future__ import annotations

from chassis.auth import Access, Rule

_ACTIVATION = "/speako.activation.v1.ActivationService/"
_RUNTIME = "/speako.activation.v1.RuntimeService/"

POLICY: dict[str, Rule] = {
    _ACTIVATION + "GetAgentStatus": Rule(Access.READ),
    _ACTIVATION + "AssignPhoneNumber": Rule(Access.ADMIN),
    _ACTIVATION + "ReleasePhoneNumber": Rule(Access.ADMIN),
    _ACTIVATION + "ActivateAgent": Rule(Access.ADMIN),
    _ACTIVATION + "DeactivateAgent": Rule(Access.ADMIN),
    # The telephony gateway's calls: internal, service role only.
    _ACTIVATION + "RouteCall": Rule(Access.SERVICE),
    _ACTIVATION + "GetCall": Rule(Access.SERVICE),
    _ACTIVATION + "EndCall": Rule(Access.SERVICE),
    # The publisher's deploy target.
    _RUNTIME + "DeployBundle": Rule(Access.SERVICE),
}
