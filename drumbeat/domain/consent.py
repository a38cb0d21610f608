"""Consent: who said stop, and how an inbound text is read (DESIGN.md §9, API.md v1.1 Consent).

Consent belongs to the workspace, not to a campaign: an address on the suppression list is
never contacted again until the person opts back in (START) or an owner deletes the entry.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from collections.abc import Iterable
from enum import StrEnum
from typing import Literal


class SuppressionReason(StrEnum):
    MANUAL = "manual"
    STOP_KEYWORD = "stop_keyword"
    PROVIDER_OPT_OUT = "provider_opt_out"
    UNSUBSCRIBE_LINK = "unsubscribe_link"
    BOUNCE = "bounce"
    IMPORT = "import"


# Why an address is suppressed, in words (the lead page's "Why opted out").
REASON_TEXTS = {
    SuppressionReason.MANUAL: "Added to the suppression list by hand.",
    SuppressionReason.STOP_KEYWORD: "Replied with a stop word.",
    SuppressionReason.PROVIDER_OPT_OUT: "The provider refused the message: this person unsubscribed from the sender.",
    SuppressionReason.UNSUBSCRIBE_LINK: "Clicked the unsubscribe link in an email.",
    SuppressionReason.BOUNCE: "The email address does not exist (a hard bounce).",
    SuppressionReason.IMPORT: "Imported into the suppression list.",
}

# Each reason's short label (the suppression list's filter and column, a campaign's opted-out
# counts) and the phrase an audit entry ends with ("… suppressed +49… (a STOP reply)").
REASON_LABELS = {
    SuppressionReason.MANUAL: "Added by hand",
    SuppressionReason.STOP_KEYWORD: "STOP reply",
    SuppressionReason.PROVIDER_OPT_OUT: "Provider opt-out",
    SuppressionReason.UNSUBSCRIBE_LINK: "Unsubscribe link",
    SuppressionReason.BOUNCE: "Hard bounce",
    SuppressionReason.IMPORT: "Imported",
}
REASON_PHRASES = {
    SuppressionReason.STOP_KEYWORD: "a STOP reply",
    SuppressionReason.PROVIDER_OPT_OUT: "the provider reported an opt-out",
    SuppressionReason.UNSUBSCRIBE_LINK: "the unsubscribe link",
    SuppressionReason.BOUNCE: "a hard bounce",
    SuppressionReason.IMPORT: "an import",
}

# Carrier-standard keywords (CTIA / Twilio's defaults); a workspace adds its own.
OPT_OUT_WORDS = ("stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout")
OPT_IN_WORDS = ("start", "unstop")
HELP_WORDS = ("help", "info")

MAX_KEYWORD_LENGTH = 32

Inbound = Literal["opt_out", "opt_in", "reply"]


def _is_trimmed(ch: str) -> bool:
    # Whitespace, punctuation ("Stop." "STOP!" "¡Alto!") and symbols such as emoji.
    return ch.isspace() or unicodedata.category(ch)[0] in "PSZ" or unicodedata.category(ch) == "Cf"


def normalize_keyword(text: str) -> str:
    """The text as a keyword: surrounding whitespace and punctuation stripped, case-folded.
    "Stop." → "stop"; "stop by tomorrow?" stays a sentence ("stop by tomorrow")."""
    start, end = 0, len(text)
    while start < end and _is_trimmed(text[start]):
        start += 1
    while end > start and _is_trimmed(text[end - 1]):
        end -= 1
    return unicodedata.normalize("NFC", text[start:end]).casefold()


def keyword_problem(word: str) -> str | None:
    """Why a word cannot be a workspace keyword (None when it can)."""
    normalized = normalize_keyword(word)
    if not normalized:
        return "must hold a word (not only spaces or punctuation)"
    if len(normalized) > MAX_KEYWORD_LENGTH:
        return f"must be at most {MAX_KEYWORD_LENGTH} characters"
    return None


def keyword_set(defaults: Iterable[str], own: Iterable[str] | None) -> frozenset[str]:
    return frozenset(normalize_keyword(w) for w in (*defaults, *(own or ())))


def classify_inbound(text: str | None, opt_out_words: Iterable[str] | None = (),
                     opt_in_words: Iterable[str] | None = ()) -> Inbound:
    """An inbound message whose whole text is an opt-out word (the defaults plus the
    workspace's own) is an opt-out, one that is an opt-in word an opt-in; anything else,
    including a longer text that merely starts with such a word, is a reply. A word in both
    lists counts as an opt-out: stopping wrongly costs less than sending wrongly."""
    word = normalize_keyword(text or "")
    if not word:
        return "reply"
    if word in keyword_set(OPT_OUT_WORDS, opt_out_words):
        return "opt_out"
    if word in keyword_set(OPT_IN_WORDS, opt_in_words):
        return "opt_in"
    return "reply"


def classify_texts(texts: Iterable[str], opt_out_words: Iterable[str] | None = (),
                   opt_in_words: Iterable[str] | None = ()) -> Inbound:
    """One inbound message read through several texts (a quick-reply button's text and its
    payload): an opt-out if any text is one, else an opt-in if any is one, else a reply."""
    kinds = {classify_inbound(t, opt_out_words, opt_in_words) for t in texts}
    return "opt_out" if "opt_out" in kinds else "opt_in" if "opt_in" in kinds else "reply"


def is_help_request(text: str | None) -> bool:
    return normalize_keyword(text or "") in HELP_WORDS


def auto_reply_for(auto_replies: dict | None, kind: Inbound, texts: Iterable[str]) -> str | None:
    """The workspace's SMS auto-reply to one inbound message, if any (off by default): its
    `stop` text to an opt-out, its `help` text to HELP or INFO."""
    replies = auto_replies or {}
    if kind == "opt_out":
        return replies.get("stop") or None
    if kind == "reply" and any(is_help_request(t) for t in texts):
        return replies.get("help") or None
    return None


def address_hash(key: bytes, *, phone: str | None = None, email: str | None = None) -> str:
    """The keyed hash a suppression keeps of its (normalized) address, so an erasure may
    blank the address and the entry still matches it. Keyed: a leaked table reveals no
    phone number by brute force over the numbering plan."""
    if (phone is None) == (email is None):
        raise ValueError("give exactly one of phone or email")
    address = f"phone:{phone}" if phone is not None else f"email:{email}"
    return hmac.new(key, address.encode(), hashlib.sha256).hexdigest()


def keyword_conflicts(opt_out_words: Iterable[str], opt_in_words: Iterable[str]) -> set[str]:
    """Words that would be both an opt-out and an opt-in word (defaults included)."""
    return set(keyword_set(OPT_OUT_WORDS, opt_out_words) & keyword_set(OPT_IN_WORDS, opt_in_words))


_PHONE_SEPARATORS = str.maketrans("", "", " ()-./\t")


def search_needle(q: str) -> str:
    """A suppression search as the addresses are stored: an email part lowercased, a phone
    part without its separators and with `00` read as `+` ("0049 151" finds "+49151…")."""
    text = q.strip()
    if "@" in text or any(ch.isalpha() for ch in text):
        return text.lower()
    digits = text.translate(_PHONE_SEPARATORS)
    return "+" + digits[2:] if digits.startswith("00") else digits
