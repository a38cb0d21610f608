"""The schema. Alembic migrations create it; this module describes it for queries."""

from __future__ import annotations

from datetime import UTC

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

from drumbeat.domain.consent import SuppressionReason
from drumbeat.domain.leads import WORKABLE_LEAD_STATES
from drumbeat.domain.reasons import PauseReason

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on both engines (SQLite keeps no zone, so store naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json = JSON().with_variant(JSONB(), "postgresql")
# Lead and attempt ids are integers (millions of rows); other ids are uuid hex strings.
BigId = BigInteger().with_variant(Integer(), "sqlite")

PAUSE_REASONS_SQL = ", ".join(f"'{r.value}'" for r in PauseReason)
SUPPRESSION_REASONS_SQL = ", ".join(f"'{r.value}'" for r in SuppressionReason)

workspaces = Table(
    "workspaces", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("subscription_status", String(20), nullable=False, server_default="active"),
    Column("created_at", UTCDateTime, nullable=False),
    # Consent settings (migration 0013; API.md v1.1): the workspace's own keywords beside
    # the defaults, the contact cap ({"max", "days"} or null) and the SMS auto-replies.
    Column("opt_out_words", Json, nullable=False, server_default=text("'[]'")),
    Column("opt_in_words", Json, nullable=False, server_default=text("'[]'")),
    Column("contact_cap", Json),
    Column("auto_replies", Json, nullable=False, server_default=text("""'{"stop": null, "help": null}'""")),
)

users = Table(
    "users", metadata,
    Column("id", String(32), primary_key=True),
    Column("workspace_id", String(32), ForeignKey("workspaces.id"), nullable=False),
    Column("email", String(320), nullable=False),
    Column("role", String(20), nullable=False),
    Column("password_hash", Text),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("workspace_id", "email", name="uq_users_workspace_email"),
    CheckConstraint("role IN ('owner', 'operator', 'viewer')", name="role"),
)

tokens = Table(
    "tokens", metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),  # at most a minute behind (migration 0018)
    Index("ix_tokens_user_id", "user_id"),
)

# --- revocable access (issue 21; migration 0018) -------------------------------------------

# A signed-in dashboard session, found by the SHA-256 of its secret (the cookie carries the
# secret, the database never does). Signing out deletes it; so does removing its user.
web_sessions = Table(
    "web_sessions", metadata,
    Column("id", String(32), primary_key=True),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    # Opened by pasting an API token: revoking the token ends the session too.
    Column("token_id", String(32), ForeignKey("tokens.id", ondelete="CASCADE"), index=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
)

# Failed sign-ins, one row each, by the SHA-256 of "email:<address>" or "client:<address>":
# the throttle reads them, so it holds across every process sharing the database.
sign_in_failures = Table(
    "sign_in_failures", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("key_hash", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False, index=True),
    Index("ix_sign_in_failures_key", "key_hash", "at"),
)

integrations = Table(
    "integrations", metadata,
    Column("id", String(32), primary_key=True),
    Column("workspace_id", String(32), ForeignKey("workspaces.id"), nullable=False, index=True),
    Column("channel", String(20), nullable=False),
    Column("provider", String(20), nullable=False),
    Column("label", String(200), nullable=False),
    Column("credentials_encrypted", Text, nullable=False),  # Fernet token of the JSON credentials
    Column("config", Json, nullable=False),
    Column("daily_cap", Integer),
    Column("health", String(20), nullable=False, server_default="active"),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", UTCDateTime, nullable=False),
    # Meta's messaging-limit tier for the number (sends a day), apart from the operator's
    # daily_cap: a key is held to the lower of the two (domain.channels.effective_daily_cap).
    Column("provider_daily_limit", Integer),
    Column("messaging_quality", Json),  # the last quality update the provider reported
    # When the secrets last changed (migration 0014): a key failure before it is one the
    # owner has answered. Null: unchanged since the integration was added.
    Column("credentials_updated_at", UTCDateTime),
    CheckConstraint("health IN ('active', 'disconnected', 'restricted')", name="health"),
)

# Each WhatsApp integration's copy of Meta's message templates (replaced whole by a sync).
template_catalogue = Table(
    "template_catalogue", metadata,
    Column("integration_id", String(32), ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(512), primary_key=True),
    Column("language", String(20), primary_key=True),
    Column("status", String(40), nullable=False),
    Column("category", String(40)),
    Column("parameter_format", String(20)),
    Column("components", Json, nullable=False),
    Column("synced_at", UTCDateTime, nullable=False),
)

campaigns = Table(
    "campaigns", metadata,
    Column("id", String(32), primary_key=True),
    Column("workspace_id", String(32), ForeignKey("workspaces.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("paused_reason", String(40)),
    Column("paused_at", UTCDateTime),
    Column("paused_by_type", String(10)),
    Column("paused_by_id", String(64)),
    Column("pause_details", Json, nullable=False),
    Column("schedule", Json, nullable=False),
    Column("limits", Json, nullable=False),
    Column("failure_policy", Json, nullable=False),
    Column("integration_ids", Json),
    Column("run", Integer, nullable=False, server_default="0"),  # bumped by every start/resume
    # Workable leads due before this instant are parked: the re-clamp has not placed them
    # yet, so no worker claims them (DESIGN.md §5; domain.schedule.PLACED_OPENINGS).
    Column("parked_before", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    CheckConstraint(
        "status IN ('draft', 'scheduled', 'sending', 'paused', 'completed', 'failed', 'canceled')",
        name="status",
    ),
    # DESIGN.md §2: paused if and only if a known reason is recorded.
    CheckConstraint(
        f"(status = 'paused' AND paused_reason IS NOT NULL AND paused_reason IN ({PAUSE_REASONS_SQL}))"
        " OR (status <> 'paused' AND paused_reason IS NULL)",
        name="paused_iff_reason",
    ),
)

steps = Table(
    "steps", metadata,
    Column("campaign_id", String(32), ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("channel", String(20), nullable=False),
    Column("template", Json, nullable=False),
    Column("delay_seconds", Integer, nullable=False, server_default="0"),
    # null, or [{"template", "weight"}, ...] (2 to 5; `template` then holds the first's) (migration 0022)
    Column("variants", Json),
)

holds = Table(
    "holds", metadata,
    Column("campaign_id", String(32), ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("channel", String(20), primary_key=True),
    Column("reason", String(40), nullable=False),
    Column("since", UTCDateTime, nullable=False),
    Column("details", Json, nullable=False),
)

# Keys that answered a key-level error in a campaign's current run (DESIGN.md §4).
key_failures = Table(
    "key_failures", metadata,
    Column("campaign_id", String(32), ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("run", Integer, primary_key=True),
    Column("integration_id", String(32), ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True),
    Column("error_code", String(80)),
    Column("error_message", Text),
    Column("at", UTCDateTime, nullable=False),
)

# Workable leads (domain.leads.WORKABLE_LEAD_STATES) as a literal IN list: the partial
# indexes' predicate, and statements that must prove it to the planner use it too.
WORKABLE_PREDICATE = "state IN ({})".format(", ".join(f"'{state}'" for state in WORKABLE_LEAD_STATES))
# The same as a clause on the leads table. A statement that is to use those indexes must
# spell the states literally: with bound parameters in the IN list SQLite cannot prove the
# index's predicate and scans every workable lead of the campaign (ix_leads_campaign_state)
# to sort them, per claim; executemany allows no IN list at all.
WORKABLE_LEADS = text(f"leads.{WORKABLE_PREDICATE}")
# Leads failed by the claim because their message could not leave (claims.fail_unsendable):
# lead-level codes are the only ones in Drumbeat's own namespace. Literal, like the above.
CONTENT_FAILED_PREDICATE = "state = 'failed' AND last_error LIKE 'drumbeat:%'"
CONTENT_FAILED_LEADS = text("leads.state = 'failed' AND leads.last_error LIKE 'drumbeat:%'")

# Key- and campaign-level answers (ix_attempts_stops' predicate), literal like the above.
STOP_ERRORS_PREDICATE = "error_class IN ('key', 'campaign')"
STOP_ERRORS = text("attempts.error_class IN ('key', 'campaign')")

leads = Table(
    "leads", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("campaign_id", String(32), ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("phone", String(20)),
    Column("email", String(320)),
    Column("linkedin_url", String(500)),
    Column("first_name", String(200)),
    Column("last_name", String(200)),
    Column("timezone", String(64)),
    Column("attributes", Json, nullable=False),
    Column("state", String(20), nullable=False),
    Column("current_step", Integer, nullable=False, server_default="0"),
    Column("next_action_at", UTCDateTime, nullable=False),
    Column("retries", Integer, nullable=False, server_default="0"),
    Column("attempt_no", Integer, nullable=False, server_default="0"),  # attempts of current step
    # "acceptance": an invitation was sent and the next step waits for it until next_action_at.
    Column("awaiting", String(20)),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", UTCDateTime),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint(
        "state IN ('not_contacted', 'in_progress', 'completed', 'replied', 'failed',"
        " 'opted_out', 'in_doubt', 'canceled')",
        name="state",
    ),
    # The due-lead query: only unfinished leads, by campaign and next action time.
    Index(
        "ix_leads_due", "campaign_id", "next_action_at",
        postgresql_where=text(WORKABLE_PREDICATE), sqlite_where=text(WORKABLE_PREDICATE),
    ),
    Index("ix_leads_campaign_state", "campaign_id", "state", "id"),  # lists of leads by state, paged by id
    # Invitations waiting for acceptance, expired every tick (migration 0007).
    Index("ix_leads_awaiting", "campaign_id", "next_action_at",
          postgresql_where=text(f"awaiting IS NOT NULL AND {WORKABLE_PREDICATE}"),
          sqlite_where=text(f"awaiting IS NOT NULL AND {WORKABLE_PREDICATE}")),
    # Leads failed before any send for their message's content (drumbeat:* codes): the
    # samples of the campaign's errors (migration 0010).
    Index("ix_leads_content_failures", "campaign_id", "last_error", "id",
          postgresql_where=text(CONTENT_FAILED_PREDICATE), sqlite_where=text(CONTENT_FAILED_PREDICATE)),
    # Duplicates within a campaign are skipped at import: one lead per address.
    Index("uq_leads_campaign_phone", "campaign_id", "phone", unique=True,
          postgresql_where=text("phone IS NOT NULL"), sqlite_where=text("phone IS NOT NULL")),
    Index("uq_leads_campaign_email", "campaign_id", "email", unique=True,
          postgresql_where=text("email IS NOT NULL"), sqlite_where=text("email IS NOT NULL")),
    Index("uq_leads_campaign_linkedin", "campaign_id", "linkedin_url", unique=True,
          postgresql_where=text("linkedin_url IS NOT NULL"), sqlite_where=text("linkedin_url IS NOT NULL")),
)

attempts = Table(
    "attempts", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("lead_id", BigId, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False),
    Column("campaign_id", String(32), nullable=False),  # the lead's (its key proves it; migration 0008)
    Column("step", Integer, nullable=False),
    Column("channel", String(20), nullable=False),
    Column("integration_id", String(32)),
    Column("run", Integer, nullable=False),
    Column("idempotency_key", String(80), nullable=False, unique=True),
    Column("status", String(20), nullable=False),
    Column("provider_message_id", String(200)),
    Column("error_code", String(80)),
    Column("error_class", String(20)),
    Column("error_message", Text),
    # A failure that counts (breakdown.failed, failure window): lead-level or retries exhausted.
    Column("counted_failure", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("variant", SmallInteger),  # the step's variant sent (domain.variants); null without (migration 0022)
    CheckConstraint(
        "status IN ('sending', 'sent', 'delivered', 'read', 'failed', 'key_error', 'in_doubt')",
        name="status",
    ),
    # No index on status or provider_message_id (migration 0008): recording an accepted
    # answer then changes no indexed column, so PostgreSQL rewrites the row in place (HOT).
    Index("ix_attempts_lead", "lead_id"),
    Index("ix_attempts_window", "campaign_id", "run", "channel", "id"),  # the failure window
    Index("ix_attempts_counted_failures", "campaign_id", "error_code", "id",  # error samples
          postgresql_where=text("counted_failure"), sqlite_where=text("counted_failure")),
    # Key- and campaign-level answers of a run: the campaign's stop errors (migration 0012).
    Index("ix_attempts_stops", "campaign_id", "run", "error_class", "error_code", "id",
          postgresql_where=text(STOP_ERRORS_PREDICATE), sqlite_where=text(STOP_ERRORS_PREDICATE)),
)

# The attempt of a provider's message id (delivery receipts, replies): written with the
# attempt's outcome, in the same statement. No foreign key: its per-row check would cost
# what the in-place update saves (migration 0008); lookups join attempts.
provider_messages = Table(
    "provider_messages", metadata,
    Column("attempt_id", BigId, primary_key=True),
    Column("provider_message_id", String(200), nullable=False, index=True),
)

# Maintained counts of a campaign (migration 0005), kept by triggers on leads and attempts
# in the writing transaction: `lead:<state>`, `step:<current step>:<state>` (unfinished
# leads only), `attempt:<status>`, `counted_failure`,
# `error:<code>` (counted failures) and `accepted@<UTC quarter hour>` (accepted sends by
# their start); and, written by the claim itself, `content_error:<code>` (leads failed
# before any send: counts.add_content_failures). A metric's value is the SUM of its rows: PostgreSQL appends delta rows
# (insert-only, so workers never queue on a counter) that store/counts.fold() compacts;
# SQLite keeps one row per metric (primary key there, plain index here).
campaign_counts = Table(
    "campaign_counts", metadata,
    Column("campaign_id", String(32), nullable=False),
    Column("metric", String(120), nullable=False),
    Column("n", BigInteger, nullable=False),
    Index("ix_campaign_counts_campaign", "campaign_id", "metric"),
)

# Per campaign, step, variant (-1: the step has none) and UTC quarter hour ('YYYY-MM-DDTHH:MM'):
# accepted sends (`sent`, with delivered and read inside it, as `breakdown`), counted
# failures, and leads that turned replied or opted out (credited to their last attempt's
# step and variant), kept by triggers (migration 0022) in the writing transaction. A value
# is the SUM of its rows: PostgreSQL appends delta rows, folded by store.stats.fold.
step_stats = Table(
    "step_stats", metadata,
    Column("campaign_id", String(32), nullable=False),
    Column("step", Integer, nullable=False),
    Column("variant", SmallInteger, nullable=False),
    Column("quarter", String(16), nullable=False),
    *(Column(name, BigInteger, nullable=False, server_default="0")
      for name in ("sent", "delivered", "read", "failed", "replied", "opted_out")),
    Index("ix_step_stats_campaign", "campaign_id", "quarter"),
)

timeline = Table(
    "timeline", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("campaign_id", String(32), ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("at", UTCDateTime, nullable=False),
    Column("from_status", String(20)),
    Column("to_status", String(20)),
    Column("action", String(40), nullable=False),
    Column("reason", String(40)),
    Column("actor_type", String(10), nullable=False),
    Column("actor_id", String(64)),
    Column("details", Json, nullable=False),
)

suppressions = Table(
    "suppressions", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("workspace_id", String(32), ForeignKey("workspaces.id"), nullable=False),
    Column("phone", String(20)),
    Column("email", String(320)),
    Column("created_at", UTCDateTime, nullable=False),
    # Consent (migration 0013): why and where the address was suppressed, and a keyed hash
    # of it (domain.consent.address_hash) that still matches after an erasure blanks it.
    Column("reason", String(20), nullable=False, server_default="manual"),
    Column("source_campaign_id", String(32)),
    Column("source_lead_id", BigId),
    Column("source_channel", String(20)),
    Column("address_hash", String(64)),
    CheckConstraint(f"reason IN ({SUPPRESSION_REASONS_SQL})", name="reason"),
    Index("ix_suppressions_phone", "workspace_id", "phone"),
    Index("ix_suppressions_email", "workspace_id", "email"),
    Index("ux_suppressions_address_hash", "workspace_id", "address_hash", unique=True),
)

# Every STOP and START received, kept even when the sender is no lead (lead_id null); the
# address is blanked by an erasure.
consent_events = Table(
    "consent_events", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("workspace_id", String(32), ForeignKey("workspaces.id"), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("channel", String(20)),
    Column("address", String(320)),
    Column("lead_id", BigId),
    Column("integration_id", String(32)),
    Column("text", Text),
    Column("at", UTCDateTime, nullable=False),
    CheckConstraint("kind IN ('opt_out', 'opt_in')", name="kind"),
    Index("ix_consent_events_address", "workspace_id", "address"),
    Index("ix_consent_events_lead", "lead_id"),
)

# --- schedule and limits (DESIGN.md §6; migration 0002) ----------------------------------

# Sends charged against a cap, claimed in the same transaction as the leads: one row per
# campaign and local day ("day:2026-03-02") and week ("week:<its Monday>"), one per
# integration and UTC day; the campaign's "rate" row paces rate_per_second across workers
# (`until`: when the sends booked so far are spread out). Updating a row locks it, which
# serialises the claims that draw on the same budget.
send_counters = Table(
    "send_counters", metadata,
    Column("kind", String(12), primary_key=True),  # campaign | integration
    Column("scope_id", String(32), primary_key=True),
    Column("period", String(20), primary_key=True),
    Column("count", Integer, nullable=False, server_default="0"),
    Column("until", UTCDateTime),
)


# --- notifications and engine locks (DESIGN.md §8; migration 0003) ---------------------

# Outbound webhooks of a workspace; the secret that signs deliveries is sealed like credentials.
webhooks = Table(
    "webhooks", metadata,
    Column("id", String(32), primary_key=True),
    Column("workspace_id", String(32), ForeignKey("workspaces.id"), nullable=False, index=True),
    Column("url", String(500), nullable=False),
    Column("secret_encrypted", Text, nullable=False),
    Column("events", Json, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# The durable outbox: one row per webhook per event, written in the transaction that made
# the event, with the exact body that is signed and sent (so every retry is byte-identical).
webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("webhook_id", String(32), ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("campaign_id", String(32), nullable=False),
    Column("event", String(40), nullable=False),
    Column("body", Text, nullable=False),
    Column("state", String(20), nullable=False),  # pending | delivered
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("locked_until", UTCDateTime),  # a notifier is delivering it
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    CheckConstraint("state IN ('pending', 'delivered')", name="state"),
    Index("ix_webhook_deliveries_pending", "state", "webhook_id", "campaign_id", "id"),
)

# Emails to a workspace's owners and operators about the same events (DESIGN.md §8),
# sent where DRUMBEAT_SMTP_URL or an SMTP integration is configured, else skipped.
email_notifications = Table(
    "email_notifications", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("workspace_id", String(32), ForeignKey("workspaces.id"), nullable=False),
    Column("campaign_id", String(32), nullable=False),
    Column("event", String(40), nullable=False),
    Column("recipients", Json, nullable=False),
    Column("payload", Json, nullable=False),  # campaign, reason, details: the email is written at send time
    Column("state", String(20), nullable=False),  # pending | sent | skipped
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("locked_until", UTCDateTime),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    CheckConstraint("state IN ('pending', 'sent', 'skipped')", name="state"),
    Index("ix_email_notifications_pending", "state", "next_attempt_at"),
)

# Every try of every delivery: the delivery log (API.md, GET /webhooks/{id}/deliveries).
webhook_delivery_log = Table(
    "webhook_delivery_log", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("delivery_id", BigId, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("attempt", Integer, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("at", UTCDateTime, nullable=False),
)

# A named lease one process holds at a time (the sweeper on SQLite, where there are no
# advisory locks).
engine_locks = Table(
    "engine_locks", metadata,
    Column("name", String(40), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)


# --- lead imports (API.md v1.1; migration 0011) ------------------------------------------

# One row per CSV import: the header as given (the rejected.csv columns) and the counts.
imports = Table(
    "imports", metadata,
    Column("id", String(32), primary_key=True),
    Column("workspace_id", String(32), ForeignKey("workspaces.id"), nullable=False),
    Column("campaign_id", String(32), ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("columns", Json, nullable=False),
    Column("counts", Json),  # {"accepted", "duplicates", "rejected"}; null while under way
    Column("created_at", UTCDateTime, nullable=False, index=True),
)

# Every rejected row of an import, as read (cells) with its reasons; kept IMPORT_KEEP_DAYS.
import_rejections = Table(
    "import_rejections", metadata,
    Column("import_id", String(32), ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True),
    Column("row", Integer, primary_key=True),
    Column("workspace_id", String(32), nullable=False),
    Column("cells", Json, nullable=False),
    Column("reasons", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# --- the audit log (API.md v1.1, Consent; migration 0015) ---------------------------------

# Who created, changed or deleted what, and every campaign action; written in the change's
# own transaction. actor: a user (dashboard), a token (API; user_id is its user) or the
# system (actor_id names what acted). Secret values never reach `details`.
audit_events = Table(
    "audit_events", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("workspace_id", String(32), ForeignKey("workspaces.id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor_type", String(10), nullable=False),
    Column("actor_id", String(64)),
    Column("user_id", String(32)),
    Column("action", String(40), nullable=False),
    Column("object_type", String(20), nullable=False),
    Column("object_id", String(64), nullable=False),
    Column("details", Json, nullable=False),
    CheckConstraint("actor_type IN ('user', 'token', 'system')", name="actor_type"),
    Index("ix_audit_events_newest", "workspace_id", "id"),
    Index("ix_audit_events_object_type", "workspace_id", "object_type", "id"),
    Index("ix_audit_events_user", "workspace_id", "user_id", "id"),
)

# --- forms that do one thing (issue 19; migration 0014) ------------------------------------

# A dashboard form's one-time nonce, inserted in the transaction of its effect: a second post
# of the same form finds it and goes to `result_url` (null while a long effect is under way).
form_submissions = Table(
    "form_submissions", metadata,
    Column("nonce", String(64), primary_key=True),
    Column("workspace_id", String(32), nullable=False),
    Column("result_url", Text),
    Column("used_at", UTCDateTime, nullable=False, index=True),
)
