"""Refusals the domain raises; the API maps each one to its error code (API.md)."""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"

    def __init__(self, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidTransition(DomainError):
    code = "invalid_transition"

    def __init__(self, from_status: str, action: str) -> None:
        super().__init__(
            f"cannot {action} a campaign that is {from_status}",
            {"from": from_status, "action": action},
        )


class ConfirmationRequired(DomainError):
    code = "confirmation_required"


class ResumeBlocked(DomainError):
    code = "resume_blocked"


class NotFound(DomainError):
    code = "not_found"


class ValidationFailed(DomainError):
    """Input that breaks a rule; `fields` name what is wrong."""

    code = "validation_error"

    def __init__(self, fields: list[dict], message: str = "invalid input") -> None:
        super().__init__(message, {"fields": fields})
        self.fields = fields


class Unavailable(DomainError):
    """A provider (or another service we depend on) could not do it now; nothing changed."""

    code = "unavailable"


class RateLimited(DomainError):
    """Too many requests of one kind; `details.retry_after_seconds` says when to try again."""

    code = "rate_limited"


class Forbidden(DomainError):
    """The caller's role does not allow this (a rule finer than a route's role)."""

    code = "forbidden"


class LastOwner(DomainError):
    """Demoting or removing the workspace's last owner (issue 21): 409 invalid_transition."""

    code = "invalid_transition"

    def __init__(self, role: str, action: str) -> None:
        verb = "removed" if action == "remove" else "demoted"
        super().__init__(f"the workspace's last owner cannot be {verb}; make another user owner first",
                         {"from": role, "action": action})
