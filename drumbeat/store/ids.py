import secrets
import uuid


def new_id() -> str:
    return uuid.uuid4().hex


def new_token() -> str:
    return "dbt_" + secrets.token_urlsafe(32)
