"""WhatsApp template components: Meta's send shape, per-lead rendering, the catalogue."""

from __future__ import annotations

import pytest

from drumbeat.domain.templates import INVALID_PARAMETER, MESSAGE_TOO_LONG
from drumbeat.domain.whatsapp_templates import (
    catalogue_mismatches,
    components_of,
    form_values,
    parameter_counts,
    parameter_fields,
    render_components,
    rendered_problem,
    shape_problems,
    strings,
    template_object,
)

COMPONENTS = [
    {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example/{{attributes.img}}"}}]},
    {"type": "body", "parameters": [{"type": "text", "text": "{{first_name|there}}"},
                                    {"type": "text", "text": "{{attributes.order}}"}]},
    {"type": "button", "sub_type": "url", "index": 0, "parameters": [{"type": "text", "text": "{{attributes.order}}"}]},
    {"type": "button", "sub_type": "quick_reply", "index": "1", "parameters": [{"type": "payload", "payload": "STOP"}]},
]

CATALOGUE = [{
    "name": "order_ready", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
    "parameter_format": "POSITIONAL",
    "components": [
        {"type": "HEADER", "format": "IMAGE"},
        {"type": "BODY", "text": "Hi {{1}}, your order {{2}} is ready. {{1}}!"},
        {"type": "FOOTER", "text": "Reply STOP to opt out"},
        {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track", "url": "https://shop.example/t/{{1}}"},
                                        {"type": "QUICK_REPLY", "text": "Stop"}]},
    ],
}]


def rendered(template: dict, values: dict) -> dict:
    return template_object({**template, "components": render_components(template["components"], values)})


def test_metas_send_shape_is_accepted_as_is():
    assert shape_problems(COMPONENTS) == []


@pytest.mark.parametrize(("components", "path"), [
    ("body", "components"),
    ([{"type": "footer", "parameters": []}], "components[0].type"),
    ([{"type": "body", "parameters": []}], "components[0].parameters"),
    ([{"type": "body", "parameters": [{"type": "text", "text": 5}]}], "components[0].parameters[0].text"),
    ([{"type": "body", "parameters": [{"type": "image", "image": {"link": "https://x"}}]}],
     "components[0].parameters[0].type"),
    ([{"type": "header", "parameters": [{"type": "image", "image": {"link": "http://x.example/a.png"}}]}],
     "components[0].parameters[0].image.link"),
    ([{"type": "button", "sub_type": "url", "index": "12", "parameters": [{"type": "text", "text": "a"}]}],
     "components[0].index"),
    ([{"type": "button", "sub_type": "call", "index": "0", "parameters": [{"type": "text", "text": "a"}]}],
     "components[0].sub_type"),
    ([{"type": "body", "parameters": [{"type": "text", "text": "a"}], "extra": 1}], "components[0].extra"),
    ([{"type": "body", "parameters": [{"type": "text", "text": "a" * 1025}]}], "components"),
    ([{"type": "button", "sub_type": "quick_reply", "index": str(i % 10), "parameters": [
        {"type": "payload", "payload": "p"}]} for i in range(11)], "components"),
    ([{"type": "body", "parameters": [{"type": "currency", "currency": {"code": "USD"}}]}],
     "components[0].parameters[0].currency"),
    ([{"type": "body", "parameters": [{"type": "text", "text": "a", "parameter_name": "First Name"}]}],
     "components[0].parameters[0].parameter_name"),
])
def test_what_meta_would_refuse_is_named_by_its_path(components, path):
    assert path in [p for p, _ in shape_problems(components)]


def test_every_string_of_the_components_is_where_variables_may_be():
    found = strings(COMPONENTS)

    assert "https://cdn.example/{{attributes.img}}" in found
    assert "{{first_name|there}}" in found and "STOP" in found


def test_the_template_object_is_rendered_for_the_lead_in_metas_shape():
    values = {"first_name": "Ada", "attributes.order": "A-17", "attributes.img": "a.png"}

    sent = template_object({"name": "order_ready", "language": "en_US", "body": "preview only",
                            "components": render_components(COMPONENTS, values)})

    assert sent == {"name": "order_ready", "language": {"code": "en_US"}, "components": [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example/a.png"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Ada"}, {"type": "text", "text": "A-17"}]},
        {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "A-17"}]},
        {"type": "button", "sub_type": "quick_reply", "index": "1",
         "parameters": [{"type": "payload", "payload": "STOP"}]},
    ]}


def test_a_template_without_components_sends_name_and_language_only():
    assert template_object({"name": "hello", "language": "en"}) == {"name": "hello", "language": {"code": "en"}}


@pytest.mark.parametrize(("value", "code"), [
    ("two\nlines", INVALID_PARAMETER),
    ("tab\there", INVALID_PARAMETER),
    ("five     spaces", INVALID_PARAMETER),
    ("x" * 1025, MESSAGE_TOO_LONG),
])
def test_a_parameter_meta_would_refuse_for_its_content_is_named(value, code):
    sent = rendered({"name": "t", "language": "en", "components": [
        {"type": "body", "parameters": [{"type": "text", "text": "{{attributes.v}}"}]}]}, {"attributes.v": value})

    assert rendered_problem(sent)[0] == code


def test_a_long_header_and_a_rendered_http_link_are_refused_and_fine_parameters_are_not():
    header = rendered({"name": "t", "language": "en", "components": [
        {"type": "header", "parameters": [{"type": "text", "text": "{{attributes.v}}"}]}]}, {"attributes.v": "h" * 61})
    link = rendered({"name": "t", "language": "en", "components": [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "{{attributes.v}}"}}]}]},
        {"attributes.v": "http://insecure.example/a.png"})
    fine = rendered({"name": "t", "language": "en", "components": COMPONENTS},
                           {"first_name": "Ada", "attributes.order": "four    spaces ok", "attributes.img": "a"})

    assert rendered_problem(header)[0] == MESSAGE_TOO_LONG
    assert rendered_problem(link)[0] == INVALID_PARAMETER
    assert rendered_problem(fine) is None


def test_parameter_counts_of_a_catalogue_template():
    assert parameter_counts(CATALOGUE[0]["components"]) == {"header": 1, "body": 2, "buttons": [1, 0]}
    assert parameter_counts([{"type": "BODY", "text": "Hello"}]) == {"header": 0, "body": 0, "buttons": []}
    assert parameter_counts([{"type": "HEADER", "format": "TEXT", "text": "Hi {{1}}"}])["header"] == 1


def test_a_step_matching_the_catalogue_has_no_mismatch():
    step = {"name": "order_ready", "language": "en_US", "components": COMPONENTS}

    assert catalogue_mismatches(step, CATALOGUE) == []


@pytest.mark.parametrize(("change", "words"), [
    ({"name": "order_redy"}, "not in the catalogue"),
    ({"language": "de"}, "has no language 'de' (it has en_US)"),
    ({"components": COMPONENTS[1:]}, "the header of 'order_ready' takes 1 parameter(s), the step gives 0"),
    ({"components": [COMPONENTS[0], {"type": "body", "parameters": [{"type": "text", "text": "x"}]}, *COMPONENTS[2:]]},
     "the body of 'order_ready' takes 2 parameter(s), the step gives 1"),
    ({"components": COMPONENTS[:2]}, "button 0 of 'order_ready' (URL) takes 1 parameter(s)"),
    ({"components": [*COMPONENTS, {"type": "button", "sub_type": "url", "index": "5",
                                   "parameters": [{"type": "text", "text": "x"}]}]}, "has no button 5"),
])
def test_each_mismatch_with_the_catalogue_is_said(change, words):
    step = {"name": "order_ready", "language": "en_US", "components": COMPONENTS, **change}

    assert any(words in m for m in catalogue_mismatches(step, CATALOGUE)), catalogue_mismatches(step, CATALOGUE)


def test_a_named_template_needs_each_parameter_name_it_defines():
    named = [{"name": "welcome", "language": "en", "status": "APPROVED", "parameter_format": "NAMED",
              "components": [{"type": "BODY", "text": "Hi {{first_name}}, welcome to {{shop}}"}]}]
    good = {"name": "welcome", "language": "en", "components": [{"type": "body", "parameters": [
        {"type": "text", "parameter_name": "shop", "text": "Acme"},
        {"type": "text", "parameter_name": "first_name", "text": "{{first_name}}"}]}]}
    bad = {"name": "welcome", "language": "en", "components": [{"type": "body", "parameters": [
        {"type": "text", "parameter_name": "name", "text": "{{first_name}}"},
        {"type": "text", "parameter_name": "shop", "text": "Acme"}]}]}

    assert catalogue_mismatches(good, named) == []
    assert "named parameters first_name, shop" in catalogue_mismatches(bad, named)[0]


# --- the builder's parameter form ------------------------------------------------------------

NAMED = {
    "name": "welcome", "language": "en", "status": "APPROVED", "parameter_format": "NAMED",
    "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Welcome, {{first_name}}"},
        {"type": "BODY", "text": "Dear {{first_name}}, your code is {{code}}. See you in {{city}}."},
    ],
}


def test_a_positional_template_asks_for_its_header_link_each_body_placeholder_and_its_buttons():
    fields = parameter_fields(CATALOGUE[0])
    assert [(f.key, f.part, f.kind, f.required) for f in fields] == [
        ("header.image", "header", "image", True), ("body.1", "body", "text", True),
        ("body.2", "body", "text", True), ("button.0", "button", "text", True),
        ("button.1", "button", "payload", False)]
    assert [f.label for f in fields] == ["Header image link", "Body {{1}}", "Body {{2}}",
                                         'Button 1 "Track" link {{1}}', 'Button 2 "Stop" reply payload']
    assert fields[1].context == "Hi {{1}}, your order {{2}} is ready. {{1}}!"
    assert fields[3].context == "https://shop.example/t/{{1}}"
    assert all(f.name is None for f in fields)


def test_a_long_text_is_shown_around_its_placeholder_only():
    entry = {"components": [{"type": "BODY", "text": "x" * 100 + " Hi {{1}} there " + "y" * 100}]}
    (field,) = parameter_fields(entry)
    assert field.context.startswith("…") and field.context.endswith("…")
    assert "Hi {{1}} there" in field.context and len(field.context) < 100


def test_a_named_template_asks_for_each_name_once_and_its_parameters_carry_the_name():
    fields = parameter_fields(NAMED)
    assert [(f.key, f.name) for f in fields] == [("header.first_name", "first_name"), ("body.first_name", "first_name"),
                                                 ("body.code", "code"), ("body.city", "city")]
    components, paths = components_of(fields, {"header.first_name": "{{first_name}}",
                                               "body.first_name": "{{first_name}}",
                                               "body.code": "{{attributes.code}}", "body.city": "Berlin"})
    assert components == [
        {"type": "header", "parameters": [{"type": "text", "text": "{{first_name}}", "parameter_name": "first_name"}]},
        {"type": "body", "parameters": [
            {"type": "text", "text": "{{first_name}}", "parameter_name": "first_name"},
            {"type": "text", "text": "{{attributes.code}}", "parameter_name": "code"},
            {"type": "text", "text": "Berlin", "parameter_name": "city"}]}]
    assert paths == {"components.0.parameters.0": "header.first_name", "components.1.parameters.0": "body.first_name",
                     "components.1.parameters.1": "body.code", "components.1.parameters.2": "body.city"}
    assert catalogue_mismatches({**NAMED, "components": components}, [NAMED]) == []
    assert shape_problems(components) == []


def test_the_form_values_of_a_positional_template_are_metas_components_the_catalogue_accepts():
    fields = parameter_fields(CATALOGUE[0])
    components, paths = components_of(fields, {"header.image": "https://cdn.example/a.png", "body.1": "{{first_name}}",
                                               "body.2": "{{attributes.order}}", "button.0": "{{attributes.order}}",
                                               "button.1": "STOP"})
    assert components == [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example/a.png"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "{{first_name}}"},
                                        {"type": "text", "text": "{{attributes.order}}"}]},
        {"type": "button", "sub_type": "url", "index": "0",
         "parameters": [{"type": "text", "text": "{{attributes.order}}"}]},
        {"type": "button", "sub_type": "quick_reply", "index": "1",
         "parameters": [{"type": "payload", "payload": "STOP"}]}]
    assert paths["components.1.parameters.1"] == "body.2" and paths["components.3.parameters.0"] == "button.1"
    assert shape_problems(components) == [] and catalogue_mismatches({**CATALOGUE[0], "components": components},
                                                                     CATALOGUE) == []


def test_a_blank_required_value_stays_for_the_check_to_refuse_and_a_blank_payload_is_left_out():
    fields = parameter_fields(CATALOGUE[0])
    components, paths = components_of(fields, {"header.image": "https://cdn.example/a.png", "body.1": "Ada"})
    assert len(components) == 3 and "components.3.parameters.0" not in paths
    assert components[1]["parameters"][1] == {"type": "text", "text": ""}
    assert ("components[1].parameters[1].text", "must be a non-empty string") in shape_problems(components)


@pytest.mark.parametrize("entry", [CATALOGUE[0], NAMED], ids=["positional", "named"])
def test_components_to_form_to_components_is_the_identity(entry):
    fields = parameter_fields(entry)
    typed = {f.key: f"https://x.example/{f.key}" if f.kind == "image" else f"{{{{first_name}}}} {f.key}"
             for f in fields}
    components, _ = components_of(fields, typed)
    values = form_values(fields, components)
    assert values == typed
    assert components_of(fields, values)[0] == components


def test_stored_components_with_an_integer_index_or_named_parameters_in_another_order_fill_the_form():
    assert form_values(parameter_fields(CATALOGUE[0]), COMPONENTS) == {
        "header.image": "https://cdn.example/{{attributes.img}}", "body.1": "{{first_name|there}}",
        "body.2": "{{attributes.order}}", "button.0": "{{attributes.order}}", "button.1": "STOP"}
    fields = parameter_fields(NAMED)
    components, _ = components_of(fields, {"header.first_name": "a", "body.first_name": "b", "body.code": "c",
                                           "body.city": "d"})
    assert form_values(fields, [components[0], {"type": "body", "parameters": components[1]["parameters"][::-1]}]) \
        is None  # the order is Meta's: a reordered body is kept as JSON, not silently reordered


@pytest.mark.parametrize("components", [
    [{"type": "body", "parameters": [{"type": "currency", "currency": {"fallback_value": "$1", "code": "USD",
                                                                      "amount_1000": 1000}},
                                     {"type": "text", "text": "x"}]}],
    [{"type": "body", "parameters": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"},
                                     {"type": "text", "text": "c"}]}],
    [{"type": "body", "parameters": [{"type": "text", "text": "a", "parameter_name": "nickname"}]}],
    "not a list",
], ids=["currency", "one too many", "named", "not a list"])
def test_components_the_form_cannot_show_as_they_are_are_not_turned_into_form_values(components):
    positional = {"components": [{"type": "BODY", "text": "Hi {{1}}, {{2}}"}]}
    assert form_values(parameter_fields(positional), components) is None


def test_a_named_parameter_the_template_does_not_declare_is_not_taken_into_the_form():
    stored = [{"type": "body", "parameters": [{"type": "text", "text": "a", "parameter_name": "nickname"},
                                              {"type": "text", "text": "b", "parameter_name": "code"},
                                              {"type": "text", "text": "c", "parameter_name": "city"}]}]
    assert form_values(parameter_fields({**NAMED, "components": NAMED["components"][1:]}), stored) is None
