"""The message one step makes for one lead, and whether it may leave.

`compose` is the one place a step's template becomes a message: the worker sends what it
returns, the preview shows it and the test send sends it, so what an operator sees is
what a lead gets. A message with a variable that has no value, or whose rendered content
the provider would refuse (an SMS over ten segments, a WhatsApp parameter with a new line
or over Meta's length), is not sent: `problem` names the lead-level error instead.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from drumbeat.domain import sms
from drumbeat.domain.channels import ADDRESS_FIELD, Channel
from drumbeat.domain.templates import (
    MESSAGE_TOO_LONG,
    MISSING_VARIABLE,
    UNSUBSCRIBE_URL,
    lead_values,
    missing_variables,
    render,
    variables,
)
from drumbeat.domain.variants import template_of, templates_of
from drumbeat.domain.whatsapp_templates import render_components, rendered_problem, strings, template_object


@dataclass(frozen=True)
class OutboundMessage:
    channel: str
    to: str  # the address the channel uses (E.164 phone, email, profile URL)
    body: str
    idempotency_key: str
    subject: str | None = None
    # The step's template (name, language, action, ...); for a WhatsApp template its
    # `components` are rendered for the lead.
    template: dict = field(default_factory=dict)
    html: str | None = None  # email: the HTML part beside the text one
    # The lead's one-click unsubscribe link: an email carries it in List-Unsubscribe.
    unsubscribe_url: str | None = None


@dataclass(frozen=True)
class Composition:
    message: OutboundMessage
    missing: list[str]  # variables without value or fallback, as written
    problem: tuple[str, str] | None  # (error code, message): the lead-level reason not to send
    sms: sms.SmsSize | None = None  # SMS only: encoding and segments of the rendered text


def is_whatsapp_template(channel: str, template: Mapping[str, Any]) -> bool:
    return channel == Channel.WHATSAPP and bool(template.get("name")) and bool(template.get("language"))


def sent_texts(channel: str, template: Mapping[str, Any]) -> list[str]:
    """The template's strings that reach the recipient on this channel (a WhatsApp template's
    `body` is only the operator's preview text: Meta sends its own)."""
    if is_whatsapp_template(channel, template):
        return strings(template.get("components") or [])
    return [template.get(k) for k in ("subject", "body", "html") if isinstance(template.get(k), str)]


def needs_unsubscribe_url(step: Mapping[str, Any]) -> bool:
    """An email carries the link in its headers; any other message only where it says so."""
    return step["channel"] == Channel.EMAIL or any(
        UNSUBSCRIBE_URL in variables(text) for template in templates_of(step)
        for text in sent_texts(step["channel"], template))


def compose(step: Mapping[str, Any], lead: Mapping[str, Any], *, to: str | None = None,
            idempotency_key: str = "", unsubscribe_url: str | None = None,
            variant: int | None = None) -> Composition:
    """Render `step` for `lead` (its fields and attributes) with the lead's unsubscribe
    link (`{{unsubscribe_url}}`, an email's List-Unsubscribe). `to` overrides the lead's
    address (a test send). A step with variants renders variant `variant` (the lead's:
    domain.variants.variant_of; the first when None)."""
    channel, template = step["channel"], dict(template_of(step, variant if variant is not None else 0))
    values = lead_values(lead, unsubscribe_url=unsubscribe_url)
    missing = missing_variables(sent_texts(channel, template), values)
    if is_whatsapp_template(channel, template) and template.get("components"):
        template["components"] = render_components(template["components"], values)
    html_part = template.get("html")
    message = OutboundMessage(
        channel=channel, to=to if to is not None else str(lead.get(ADDRESS_FIELD[Channel(channel)]) or ""),
        body=render(template.get("body"), values),
        subject=render(template["subject"], values) if template.get("subject") else None,
        html=render(html_part, {k: None if v is None else html.escape(str(v)) for k, v in values.items()})
        if html_part else None,
        idempotency_key=idempotency_key, template=template,
        unsubscribe_url=unsubscribe_url if channel == Channel.EMAIL else None)
    size = sms.measure(message.body) if channel == Channel.SMS else None
    problem = None
    if missing:
        problem = (MISSING_VARIABLE, f"no value for {', '.join(missing)} (and no fallback)")
    elif size is not None and size.segments > sms.MAX_SEGMENTS:
        problem = (MESSAGE_TOO_LONG, f"the SMS takes {size.segments} segments ({size.encoding}); "
                                     f"at most {sms.MAX_SEGMENTS} are sent")
    elif is_whatsapp_template(channel, template):
        problem = rendered_problem(template_object(template))
    return Composition(message, missing, problem, size)
