"""Who may call what on the notifier (chassis.auth also checks the tenant of every resource name)."""

from __future__ import annotations

from chassis.auth import Access, Rule

_NOTIFIER = "/speako.notifier.v1.NotifierService/"

POLICY: dict[str, Rule] = {
    _NOTIFIER + "GetPublishJob": Rule(Access.READ),
    _NOTIFIER + "ListPublishJobs": Rule(Access.READ),
    _NOTIFIER + "WatchPublishJob": Rule(Access.READ),
    _NOTIFIER + "WatchPublishJobs": Rule(Access.READ),
    _NOTIFIER + "ListNotifications": Rule(Access.READ),
    # Read state is a tenant member's own bookkeeping (viewers too), never a cross-tenant write.
    _NOTIFIER + "MarkNotificationRead": Rule(Access.MEMBER),
    _NOTIFIER + "WatchNotifications": Rule(Access.READ),
    _NOTIFIER + "CreateMaintenanceNotice": Rule(Access.SRE),
}
