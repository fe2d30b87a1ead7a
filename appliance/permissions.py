"""Roles and the permissions each grants (the counter API checks permissions, never roles).

- 办事员 clerk: scan, view, edit and confirm records, search.
- 审核员 supervisor: everything a clerk does, plus dashboard, audit log, quarantine decisions, shred.
- 技术员 technician: device status and configuration, queue counts. No record content: no search,
  no record pages, no intake thumbnails.
- 管理员 admin: staff accounts, device status, audit log. Admins do not read records: account
  management and record content stay with different people.
"""

from __future__ import annotations

ROLES: tuple[str, ...] = ("clerk", "supervisor", "technician", "admin")

ROLE_LABELS: dict[str, str] = {
    "clerk": "办事员",
    "supervisor": "审核员",
    "technician": "技术员",
    "admin": "管理员",
}

RECORDS_READ = "records.read"
RECORDS_EDIT = "records.edit"
RECORDS_CONFIRM = "records.confirm"
RECORDS_SHRED = "records.shred"
SEARCH = "search"
INTAKE_VIEW = "intake.view"
QUEUE_VIEW = "queue.view"
QUARANTINE_VIEW = "quarantine.view"
QUARANTINE_DECIDE = "quarantine.decide"
DASHBOARD_VIEW = "dashboard.view"
AUDIT_VIEW = "audit.view"
DEVICE_VIEW = "device.view"
DEVICE_CONFIGURE = "device.configure"
USERS_MANAGE = "users.manage"

ALL_PERMISSIONS: frozenset[str] = frozenset(
    {
        RECORDS_READ,
        RECORDS_EDIT,
        RECORDS_CONFIRM,
        RECORDS_SHRED,
        SEARCH,
        INTAKE_VIEW,
        QUEUE_VIEW,
        QUARANTINE_VIEW,
        QUARANTINE_DECIDE,
        DASHBOARD_VIEW,
        AUDIT_VIEW,
        DEVICE_VIEW,
        DEVICE_CONFIGURE,
        USERS_MANAGE,
    }
)

_CLERK = frozenset(
    {RECORDS_READ, RECORDS_EDIT, RECORDS_CONFIRM, SEARCH, INTAKE_VIEW, QUEUE_VIEW, QUARANTINE_VIEW}
)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "clerk": _CLERK,
    "supervisor": _CLERK | {QUARANTINE_DECIDE, DASHBOARD_VIEW, AUDIT_VIEW, RECORDS_SHRED},
    "technician": frozenset({QUEUE_VIEW, DEVICE_VIEW, DEVICE_CONFIGURE}),
    "admin": frozenset({USERS_MANAGE, DEVICE_VIEW, AUDIT_VIEW}),
}

# Permissions that expose citizens' content (pages, text, names, thumbnails): never for
# technicians or admins.
CONTENT_PERMISSIONS: frozenset[str] = frozenset(
    {RECORDS_READ, RECORDS_EDIT, RECORDS_CONFIRM, RECORDS_SHRED, SEARCH, INTAKE_VIEW, QUARANTINE_DECIDE}
)


def permissions_for(role: str) -> frozenset[str]:
    """The permissions of ``role``; an unknown role has none (deny by default)."""
    return ROLE_PERMISSIONS.get(role, frozenset())


def is_role(role: object) -> bool:
    return isinstance(role, str) and role in ROLE_PERMISSIONS
