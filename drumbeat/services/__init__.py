"""Use cases. Each runs in one database transaction (its unit of work) and speaks in
domain terms; the API and the dashboard call these, never the store directly."""
