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


# {{unsubscribe_url}} and the email's List-Unsubscribe link (issue 20)

LINK = "https://drumbeat.example/u/TOKEN"


def test_an_email_carries_the_leads_unsubscribe_link_and_renders_it_where_the_template_says():
    step = {"channel": "email", "template": {"subject": "Hi {{first_name}}", "body": "Stop: {{unsubscribe_url}}",
                                             "html": '<a href="{{unsubscribe_url}}">Unsubscribe</a>'}}

    c = compose(step, LEAD, unsubscribe_url=LINK)

    assert c.problem is None
    assert c.message.unsubscribe_url == LINK
    assert c.message.body == f"Stop: {LINK}" and c.message.html == f'<a href="{LINK}">Unsubscribe</a>'


def test_an_sms_may_render_the_link_but_carries_no_header_link():
    c = compose({"channel": "sms", "template": {"body": "Opt out: {{unsubscribe_url}}"}}, LEAD, unsubscribe_url=LINK)

    assert c.message.body == f"Opt out: {LINK}" and c.message.unsubscribe_url is None


def test_without_a_link_the_variable_is_missing_and_the_message_is_not_sent():
    c = compose({"channel": "email", "template": {"subject": "Hi", "body": "Stop: {{unsubscribe_url}}"}}, LEAD)

    assert c.missing == ["unsubscribe_url"] and c.problem[0] == MISSING_VARIABLE


def test_only_emails_and_texts_that_use_it_need_the_link():
    from drumbeat.domain.messages import needs_unsubscribe_url

    assert needs_unsubscribe_url({"channel": "email", "template": {"subject": "s", "body": "b"}})
    assert needs_unsubscribe_url({"channel": "sms", "template": {"body": "{{ unsubscribe_url }}"}})
    assert not needs_unsubscribe_url({"channel": "sms", "template": {"body": "Hi {{first_name}}"}})


def test_unsubscribe_url_is_a_known_variable():
    from drumbeat.domain.templates import unknown_variables

    assert unknown_variables("Bye: {{unsubscribe_url}} {{unsubscribe_link}}") == ["unsubscribe_link"]
