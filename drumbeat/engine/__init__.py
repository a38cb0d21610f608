"""The sending engine: workers claim due leads, send, record; many processes may share one database."""
