"""Storage: SQLAlchemy tables, migrations, and the queries the services and engine need."""
