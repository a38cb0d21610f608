"""compose: the one place a step becomes a lead's message (worker, preview, test send)."""

from __future__ import annotations

from drumbeat.domain.messages import compose
from drumbeat.domain.templates import INVALID_PARAMETER, MESSAGE_TOO_LONG, MISSING_VARIABLE

LEAD = {"first_name": "Ada", "phone": "+4915112345678", "email": "ada@example.com", "attributes": {"code": "A<1>"}}


def test_an_sms_is_rendered_and_measured():
    c = compose({"channel": "sms", "template": {"body": "Hi {{first_name}}, code {{attributes.code}} €"}}, LEAD)

    assert c.problem is None and c.missing == []
    assert c.message.to == "+4915112345678" and c.message.body == "Hi Ada, code A<1> €"
    assert (c.sms.encoding, c.sms.segments) == ("GSM-7", 1)


def test_a_missing_variable_without_fallback_is_a_problem_and_with_one_is_not():
    missing = compose({"channel": "sms", "template": {"body": "Hi {{last_name}}"}}, LEAD)
    fallback = compose({"channel": "sms", "template": {"body": "Hi {{last_name|there}}"}}, LEAD)

    assert missing.missing == ["last_name"] and missing.problem[0] == MISSING_VARIABLE
    assert fallback.problem is None and fallback.message.body == "Hi there"


def test_an_sms_over_ten_segments_after_rendering_is_too_long():
    c = compose({"channel": "sms", "template": {"body": "{{attributes.long}}"}},
                {**LEAD, "attributes": {"long": "x" * (153 * 10 + 1)}})

    assert c.sms.segments == 11 and c.problem[0] == MESSAGE_TOO_LONG


def test_email_html_escapes_lead_values_and_the_text_part_does_not():
    c = compose({"channel": "email", "template": {"subject": "For {{first_name}}", "body": "Code {{attributes.code}}",
                                                  "html": "<p>Code <b>{{attributes.code}}</b></p>"}}, LEAD)

    assert c.message.subject == "For Ada" and c.message.body == "Code A<1>"
    assert c.message.html == "<p>Code <b>A&lt;1&gt;</b></p>"


def test_a_whatsapp_template_renders_its_components_and_checks_them():
    step = {"channel": "whatsapp", "template": {"name": "t", "language": "en", "body": "preview {{last_name}}",
                                                "components": [{"type": "body", "parameters": [
                                                    {"type": "text", "text": "{{first_name}}"},
                                                    {"type": "text", "text": "{{attributes.code}}"}]}]}}

    ok = compose(step, LEAD)
    bad = compose(step, {**LEAD, "attributes": {"code": "two\nlines"}})

    assert ok.problem is None  # the preview body's missing last_name is never sent
    assert ok.message.template["components"][0]["parameters"][1]["text"] == "A<1>"
    assert bad.problem[0] == INVALID_PARAMETER


def test_a_test_send_address_replaces_the_leads():
    c = compose({"channel": "email", "template": {"subject": "s", "body": "b"}}, {}, to="me@example.com")

    assert c.message.to == "me@example.com" and c.problem is None
