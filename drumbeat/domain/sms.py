"""How carriers cut an SMS into segments (3GPP TS 23.038 and 23.040).

A text made only of GSM 03.38 characters travels as GSM-7: 160 septets in one message, 153
per segment once it needs several (the rest is the concatenation header). A character of
the extension table (`€`, `[`, `{`, ...) costs two septets, an escape and the character,
and the pair never splits across two segments. Any other character makes the whole text
UCS-2: 70 UTF-16 code units in one message, 67 per segment, and a surrogate pair (an
emoji) never splits either.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7, UCS2 = "GSM-7", "UCS-2"
SINGLE = {GSM7: 160, UCS2: 70}
PER_SEGMENT = {GSM7: 153, UCS2: 67}
# More than this and carriers (and Twilio) refuse or mangle the message.
MAX_SEGMENTS = 10


@dataclass(frozen=True)
class SmsSize:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def _costs(text: str) -> tuple[str, list[int]]:
    """The encoding, and the units each character takes in it."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        return GSM7, [2 if c in GSM7_EXTENSION else 1 for c in text]
    return UCS2, [2 if ord(c) > 0xFFFF else 1 for c in text]


def measure(text: str) -> SmsSize:
    encoding, costs = _costs(text or "")
    units = sum(costs)
    if units <= SINGLE[encoding]:
        return SmsSize(encoding, units, 1 if units else 0)
    room, segments, used = PER_SEGMENT[encoding], 1, 0
    for cost in costs:  # a unit pair that does not fit opens the next segment whole
        if used + cost > room:
            segments, used = segments + 1, 0
        used += cost
    return SmsSize(encoding, units, segments)
