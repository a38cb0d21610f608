"""The campaign builder's A/B variants: "Add a variant" gives a step another message with
its weight, the form saves them as the API's `variants`, a bad weight is shown beside its
input, and the edit form of a stored campaign shows them again."""

from __future__ import annotations

from tests.conftest import db_url  # noqa: F401 - both databases here, unlike tests/web/conftest.py
from tests.web.test_builder import errors_of, form, only_campaign, operator


def test_a_step_gets_variants_with_weights_and_they_are_saved_and_shown_again(ctx, client, users):
    csrf = operator(client)
    added = client.post("/campaigns/new", data=form(csrf, op="variant:1"))
    assert added.status_code == 200 and 'data-variant="B"' in added.text
    assert 'name="steps.1.variants.1.template.body"' in added.text and 'name="steps.1.weight"' in added.text
    data = form(csrf, **{"steps.1.weight": "3", "steps.1.variants.1.template.body": "Other {{first_name|there}}",
                         "steps.1.variants.1.weight": "1"})
    saved = client.post("/campaigns/new", data=data, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    c = only_campaign(ctx, users)
    assert c["steps"][1]["variants"] == [
        {"template": {"body": "Your code {{attributes.code}}"}, "weight": 3},
        {"template": {"body": "Other {{first_name|there}}"}, "weight": 1}]
    assert "variants" not in c["steps"][0]
    edit = client.get(f"/campaigns/{c['id']}/edit").text
    assert 'data-variant="B"' in edit and "Other {{first_name|there}}" in edit.replace("&#34;", '"')


def test_a_weight_that_is_not_positive_is_refused_beside_its_input_and_nothing_is_saved(ctx, client, users):
    csrf = operator(client)
    data = form(csrf, **{"steps.1.variants.1.template.body": "B text", "steps.1.variants.1.weight": "0"})
    refused = client.post("/campaigns/new", data=data)
    assert refused.status_code == 422
    assert "steps.1.variants.1.weight" in errors_of(refused.text)
    removed = client.post("/campaigns/new", data={**data, "op": "unvariant:1:1"})
    assert 'data-variant="B"' not in removed.text
