"""`{{field}}` variables in step templates."""

from __future__ import annotations

from drumbeat.domain.templates import missing_variables, render, unknown_variables, variables


def test_variables_finds_every_name_in_a_template():
    assert variables("Hi {{first_name}}, about {{company}}?") == {"first_name", "company"}


def test_variables_allows_spaces_inside_the_braces():
    assert variables("Hi {{ first_name }} and {{company  }}") == {"first_name", "company"}


def test_variables_finds_dotted_names():
    assert variables("{{attributes.plan}} for {{ lead.city }}") == {"attributes.plan", "lead.city"}


def test_variables_counts_a_repeated_name_once():
    assert variables("{{name}} {{ name }} {{name}}") == {"name"}


def test_a_text_without_variables_has_none():
    assert variables("Hello there, {single} braces and }} stray {{") == set()
    assert variables("") == set()
    assert variables(None) == set()


def test_render_fills_each_variable_with_its_value():
    text = render("Hi {{ first_name }}, {{attributes.plan}} plan at {{company}}.",
                  {"first_name": "Ada", "attributes.plan": "pro", "company": "Acme"})

    assert text == "Hi Ada, pro plan at Acme."


def test_render_fills_every_occurrence_of_a_repeated_variable():
    assert render("{{x}}-{{ x }}", {"x": "a"}) == "a-a"


def test_render_renders_a_missing_or_null_value_as_empty():
    assert render("Hi {{first_name}}!", {}) == "Hi !"
    assert render("Hi {{first_name}}!", {"first_name": None}) == "Hi !"


def test_render_keeps_falsy_values_that_are_not_missing():
    assert render("{{n}} items, flag {{f}}", {"n": 0, "f": False}) == "0 items, flag False"


def test_render_leaves_a_text_without_variables_intact():
    text = "Hello — no {placeholders} here, {{ }} nor {{not-a-name}}.\nSecond line."

    assert render(text, {"placeholders": "X"}) == text


def test_render_does_not_interpret_braces_inside_values():
    assert render("Hi {{name}}", {"name": "{{company}}", "company": "Acme"}) == "Hi {{company}}"


def test_lead_fields_and_attributes_are_known_variables_and_anything_else_is_not():
    from drumbeat.domain.templates import unknown_variables

    assert unknown_variables("Hi {{first_name}} of {{attributes.company}} ({{email}})") == []
    assert unknown_variables("Hi {{firstname}}, {{company}} and {{attributes.}}") == ["attributes.", "company",
                                                                                       "firstname"]


def test_lead_values_expose_fields_and_prefixed_attributes():
    from drumbeat.domain.templates import lead_values

    values = lead_values({"first_name": "Jo", "attributes": {"company": "Acme"}, "secret_column": "x"})
    assert values["first_name"] == "Jo" and values["attributes.company"] == "Acme"
    assert "secret_column" not in values
    assert render("{{first_name}} at {{attributes.company}}", values) == "Jo at Acme"


def test_a_placeholder_that_is_no_variable_is_unknown_so_it_never_reaches_a_lead_as_text():
    from drumbeat.domain.templates import unknown_variables

    assert unknown_variables("Hi {{first name}} {{ }} {{first-name}}") == ["{{ }}", "{{first name}}",
                                                                         "{{first-name}}"]
    assert unknown_variables("Hi {{first_name}") == ["an unpaired {{ or }}"]
    assert unknown_variables("Hi first_name}}") == ["an unpaired {{ or }}"]
    assert unknown_variables("Hi {first_name} and {{ first_name }}") == []


# --- fallbacks and missing values (v1.1) ----------------------------------------------------

def test_a_fallback_renders_when_the_value_is_missing_or_blank():
    assert render("Hi {{first_name|there}}!", {}) == "Hi there!"
    assert render("Hi {{first_name|there}}!", {"first_name": "   "}) == "Hi there!"
    assert render("Hi {{ first_name | my friend }}!", {"first_name": None}) == "Hi my friend!"
    assert render("Hi {{first_name|there}}!", {"first_name": "Ada"}) == "Hi Ada!"


def test_a_variable_with_neither_value_nor_fallback_is_missing_as_written():
    texts = ["Hi {{first_name}}", "code {{attributes.code}} {{last_name|}}", None]

    assert missing_variables(texts, {"first_name": " "}) == ["attributes.code", "first_name"]
    assert missing_variables(texts, {"first_name": "Ada", "attributes.code": 7}) == []


def test_an_empty_fallback_is_a_chosen_blank_not_a_missing_variable():
    assert missing_variables(["{{last_name|}}"], {}) == []
    assert render("[{{last_name|}}]", {}) == "[]"


def test_a_variable_with_a_fallback_is_still_checked_for_its_name():
    assert variables("{{first_name|there}} {{attributes.x|y}}") == {"first_name", "attributes.x"}
    assert unknown_variables("{{frist_name|there}}") == ["frist_name"]
    assert unknown_variables("{{first_name|there}}") == []
