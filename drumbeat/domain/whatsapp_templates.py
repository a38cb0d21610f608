"""WhatsApp template messages: the step's `components` in Meta's send shape, rendered per
lead, and checked against the template catalogue Meta keeps for the business account.

A step's template is `{"name", "language", "body"?, "components"?}` where `components` is
what Meta's send API takes (`template.components` of `POST /{phone_number_id}/messages`):

    [{"type": "header", "parameters": [{"type": "image", "image": {"link": "https://…"}}]},
     {"type": "body", "parameters": [{"type": "text", "text": "{{first_name|there}}"}]},
     {"type": "button", "sub_type": "url", "index": "0",
      "parameters": [{"type": "text", "text": "{{attributes.order}}"}]}]

Every string in it may hold `{{variables}}` (domain/templates.py). A catalogue entry is
Meta's template definition (`GET /{waba_id}/message_templates`): upper-case component
types (`HEADER` with a `format`, `BODY`, `FOOTER`, `BUTTONS`) whose texts hold the
placeholders `{{1}}` (POSITIONAL) or `{{name}}` (NAMED).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drumbeat.domain.templates import INVALID_PARAMETER, MESSAGE_TOO_LONG, render

MAX_BODY_TEXT = 1024  # characters of body text
MAX_HEADER_TEXT = 60  # characters of a text header
MAX_BUTTONS = 10
MEDIA = ("image", "document", "video")
APPROVED = "APPROVED"

_PARAMETER_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
# Meta refuses a text parameter with a new line, a tab or more than four spaces in a row
# (error 132018): the message would never be accepted, whoever sends it.
_BAD_TEXT = re.compile(r"[\n\t]| {5,}")

Problem = tuple[str, str]  # (path inside the template, what is wrong)


# --- the step's components, as written ---------------------------------------------------

def shape_problems(components: Any) -> list[Problem]:
    """What Meta's send shape refuses in a step's `components` (paths from `components`)."""
    if not isinstance(components, list):
        return [("components", "must be a list of header, body and button components")]
    problems: list[Problem] = []
    kinds: dict[str, int] = {}
    indexes: set[str] = set()
    for i, component in enumerate(components):
        path = f"components[{i}]"
        if not isinstance(component, dict):
            problems.append((path, "must be an object"))
            continue
        kind = component.get("type")
        if kind not in ("header", "body", "button"):
            problems.append((f"{path}.type", "must be header, body or button"))
            continue
        kinds[kind] = kinds.get(kind, 0) + 1
        allowed = {"type", "parameters"} | ({"sub_type", "index"} if kind == "button" else set())
        problems += [(f"{path}.{key}", "is not a field of a template component") for key in component
                     if key not in allowed]
        parameters = component.get("parameters")
        if not isinstance(parameters, list) or not parameters:
            problems.append((f"{path}.parameters", "must be a non-empty list"))
            parameters = []
        if kind == "header":
            if len(parameters) > 1:
                problems.append((f"{path}.parameters", "a header takes one parameter"))
            checks = {"text": _text, **{m: _media for m in MEDIA}}
        elif kind == "body":
            checks = {"text": _text, "currency": _currency, "date_time": _date_time}
        else:
            sub_type = component.get("sub_type")
            index = component.get("index")
            if sub_type not in ("url", "quick_reply"):
                problems.append((f"{path}.sub_type", "must be url or quick_reply"))
            if index is None or not re.fullmatch(r"\d", str(index)):
                problems.append((f"{path}.index", "must be the button's position, 0 to 9"))
            elif str(index) in indexes:
                problems.append((f"{path}.index", f"button {index} is given twice"))
            else:
                indexes.add(str(index))
            if len(parameters) > 1:
                problems.append((f"{path}.parameters", "a button takes one parameter"))
            checks = {"payload": _payload} if sub_type == "quick_reply" else {"text": _text}
        for j, parameter in enumerate(parameters):
            ppath = f"{path}.parameters[{j}]"
            if not isinstance(parameter, dict) or parameter.get("type") not in checks:
                problems.append((f"{ppath}.type", f"must be one of {', '.join(checks)}"))
                continue
            problems += [(f"{ppath}.{field}", message) for field, message in checks[parameter["type"]](parameter)]
    for kind in ("header", "body"):
        if kinds.get(kind, 0) > 1:
            problems.append(("components", f"a template has at most one {kind}"))
    if kinds.get("button", 0) > MAX_BUTTONS:
        problems.append(("components", f"a template has at most {MAX_BUTTONS} buttons"))
    body_text = sum(len(p.get("text") or "") for c in components if isinstance(c, dict) and c.get("type") == "body"
                    for p in c.get("parameters") or [] if isinstance(p, dict) and isinstance(p.get("text"), str))
    if body_text > MAX_BODY_TEXT:
        problems.append(("components", f"body parameters hold {body_text} characters; Meta allows {MAX_BODY_TEXT}"))
    return problems


def _fields(parameter: dict, allowed: set[str]) -> list[tuple[str, str]]:
    return [(key, "is not a field of this parameter") for key in parameter if key not in allowed | {"type"}]


def _text(parameter: dict) -> list[tuple[str, str]]:
    problems = _fields(parameter, {"text", "parameter_name"})
    if not isinstance(parameter.get("text"), str) or not parameter["text"]:
        problems.append(("text", "must be a non-empty string"))
    name = parameter.get("parameter_name")
    if name is not None and not (isinstance(name, str) and _PARAMETER_NAME.fullmatch(name)):
        problems.append(("parameter_name", "must be lower-case letters, digits and underscores"))
    return problems


def _payload(parameter: dict) -> list[tuple[str, str]]:
    problems = _fields(parameter, {"payload"})
    if not isinstance(parameter.get("payload"), str) or not parameter["payload"]:
        problems.append(("payload", "must be a non-empty string"))
    return problems


def _media(parameter: dict) -> list[tuple[str, str]]:
    kind = parameter["type"]
    problems = _fields(parameter, {kind})
    media = parameter.get(kind)
    if (not isinstance(media, dict) or set(media) - {"link", "id", "filename"}
            or not (media.get("link") or media.get("id"))):
        return problems + [(kind, "must be {\"link\": \"https://…\"} or {\"id\": \"…\"}")]
    link = media.get("link")
    if link is not None and not (isinstance(link, str) and _https(link)):
        problems.append((f"{kind}.link", "must be an https:// link"))
    return problems


def _currency(parameter: dict) -> list[tuple[str, str]]:
    problems = _fields(parameter, {"currency", "parameter_name"})
    value = parameter.get("currency")
    if not (isinstance(value, dict) and isinstance(value.get("fallback_value"), str)
            and isinstance(value.get("code"), str) and isinstance(value.get("amount_1000"), int)
            and not isinstance(value.get("amount_1000"), bool)):
        problems.append(("currency", "must be {\"fallback_value\": str, \"code\": str, \"amount_1000\": int}"))
    return problems


def _date_time(parameter: dict) -> list[tuple[str, str]]:
    problems = _fields(parameter, {"date_time", "parameter_name"})
    value = parameter.get("date_time")
    if not (isinstance(value, dict) and isinstance(value.get("fallback_value"), str)):
        problems.append(("date_time", "must be {\"fallback_value\": str}"))
    return problems


def _https(link: str) -> bool:
    return link.lower().startswith("https://") and len(link) > len("https://")


def strings(value: Any) -> list[str]:
    """Every string inside a step's components (where variables may be)."""
    return [text for _, text in located_strings(value)]


def located_strings(value: Any, path: str = "components") -> list[tuple[str, str]]:
    """(path, string) of every string inside a step's components, paths as shape_problems
    writes them (`components[1].parameters[0].text`)."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in located_strings(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [found for i, v in enumerate(value) for found in located_strings(v, f"{path}[{i}]")]
    return []


# --- per lead ------------------------------------------------------------------------------

def render_components(components: Any, values: Mapping[str, object]) -> Any:
    """The components with every string rendered for one lead (keys and structure kept)."""
    if isinstance(components, str):
        return render(components, values)
    if isinstance(components, dict):
        return {k: render_components(v, values) for k, v in components.items()}
    if isinstance(components, list):
        return [render_components(v, values) for v in components]
    return components


def template_object(template: Mapping[str, Any]) -> dict:
    """Meta's `template` object of a step's template whose components are rendered
    (`render_components`): name, language and components."""
    body: dict = {"name": template["name"], "language": {"code": template["language"]}}
    if template.get("components"):
        body["components"] = [_send_shape(c) for c in template["components"]]
    return body


def _send_shape(component: dict) -> dict:
    if component.get("type") == "button" and "index" in component:
        return {**component, "index": str(component["index"])}  # Meta takes the index as a string
    return component


def rendered_problem(template_obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """(error code, message) when Meta would refuse this lead's rendered parameters for
    their content: a text with a new line, a tab or five spaces in a row, a link that is
    not https (both `drumbeat:invalid_parameter`), a header or body over Meta's length
    (`drumbeat:message_too_long`). None when the parameters are fine."""
    body_text = 0
    for component in template_obj.get("components") or []:
        kind = component.get("type")
        for parameter in component.get("parameters") or []:
            ptype = parameter.get("type")
            text = parameter.get({"text": "text", "payload": "payload"}.get(ptype, ""))
            if isinstance(text, str):
                if _BAD_TEXT.search(text):
                    return INVALID_PARAMETER, f"a {kind} parameter holds a new line, a tab or five spaces in a row"
                if kind == "header" and len(text) > MAX_HEADER_TEXT:
                    return MESSAGE_TOO_LONG, f"the header parameter has {len(text)} characters; " \
                                             f"Meta allows {MAX_HEADER_TEXT}"
                if kind == "body":
                    body_text += len(text)
            media = parameter.get(ptype) if ptype in MEDIA else None
            if isinstance(media, dict) and media.get("link") is not None and not _https(str(media["link"])):
                return INVALID_PARAMETER, f"the {ptype} link of the {kind} is not an https:// link"
    if body_text > MAX_BODY_TEXT:
        return MESSAGE_TOO_LONG, f"body parameters hold {body_text} characters; Meta allows {MAX_BODY_TEXT}"
    return None


# --- the catalogue -------------------------------------------------------------------------

def _placeholders(text: Any) -> list[str]:
    seen: list[str] = []
    for name in _PLACEHOLDER.findall(text if isinstance(text, str) else ""):
        if name not in seen:
            seen.append(name)
    return seen


def _part(components: Any, kind: str) -> dict:
    for component in components if isinstance(components, list) else []:
        if isinstance(component, dict) and str(component.get("type", "")).upper() == kind:
            return component
    return {}


def catalogue_buttons(components: Any) -> list[dict]:
    buttons = _part(components, "BUTTONS").get("buttons")
    return [b for b in buttons if isinstance(b, dict)] if isinstance(buttons, list) else []


def placeholder_names(components: Any) -> dict[str, Any]:
    """The placeholders of a catalogue template, per part: `header` and `body` as written
    (`["1", "2"]` or `["first_name"]`; a media header is one placeholder, named after its
    format), `buttons` one list per button in order."""
    header = _part(components, "HEADER")
    header_format = str(header.get("format") or "TEXT").upper() if header else None
    if header_format is None:
        header_names: list[str] = []
    elif header_format == "TEXT":
        header_names = _placeholders(header.get("text"))
    else:
        header_names = [header_format.lower()]
    return {
        "header": header_names,
        "body": _placeholders(_part(components, "BODY").get("text")),
        "buttons": [_placeholders(b.get("url")) if str(b.get("type", "")).upper() == "URL"
                    else ["coupon_code"] if str(b.get("type", "")).upper() == "COPY_CODE" else []
                    for b in catalogue_buttons(components)],
    }


def parameter_counts(components: Any) -> dict[str, Any]:
    """`{"header": n, "body": n, "buttons": [n, ...]}`: 0 where a part has none."""
    names = placeholder_names(components)
    return {"header": len(names["header"]), "body": len(names["body"]),
            "buttons": [len(b) for b in names["buttons"]]}


def find_entry(entries: list[Mapping[str, Any]], name: str, language: str) -> Mapping[str, Any] | None:
    for entry in entries:
        if entry.get("name") == name and entry.get("language") == language:
            return entry
    return None


def catalogue_mismatches(template: Mapping[str, Any], entries: list[Mapping[str, Any]]) -> list[str]:
    """Why a step's template does not fit the catalogue (its status aside: an unapproved
    template may be saved in a draft, the `template` gate refuses to start it)."""
    name, language = template.get("name"), template.get("language")
    same_name = [e for e in entries if e.get("name") == name]
    if not same_name:
        return [f"template {name!r} is not in the catalogue"]
    entry = find_entry(same_name, str(name), str(language))
    if entry is None:
        have = ", ".join(sorted(str(e.get("language")) for e in same_name))
        return [f"template {name!r} has no language {language!r} (it has {have})"]
    expected = placeholder_names(entry.get("components"))
    given = template.get("components") or []
    problems: list[str] = []
    for part in ("header", "body"):
        parameters = _part_parameters(given, part)
        if len(parameters) != len(expected[part]):
            problems.append(f"the {part} of {name!r} takes {len(expected[part])} parameter(s), "
                            f"the step gives {len(parameters)}")
        elif part == "body" and str(entry.get("parameter_format", "")).upper() == "NAMED":
            names = [p.get("parameter_name") for p in parameters if isinstance(p, dict)]
            if sorted(map(str, names)) != sorted(expected["body"]):
                problems.append(f"the body of {name!r} takes the named parameters "
                                f"{', '.join(expected['body'])}; the step names {', '.join(map(str, names))}")
    buttons = {str(c.get("index")): c for c in given if isinstance(c, dict) and c.get("type") == "button"}
    defined = catalogue_buttons(entry.get("components"))
    for index, placeholders in enumerate(expected["buttons"]):
        component = buttons.pop(str(index), None)
        kind = str(defined[index].get("type", "")).upper()
        if placeholders and (component is None or len(component.get("parameters") or []) != len(placeholders)):
            problems.append(f"button {index} of {name!r} ({kind}) takes {len(placeholders)} parameter(s)")
        elif component is not None and not placeholders and kind != "QUICK_REPLY":
            problems.append(f"button {index} of {name!r} ({kind}) takes no parameter")
        elif component is not None and kind == "QUICK_REPLY" and component.get("sub_type") != "quick_reply":
            problems.append(f"button {index} of {name!r} is a quick reply")
        elif component is not None and kind == "URL" and component.get("sub_type") != "url":
            problems.append(f"button {index} of {name!r} is a URL button")
    problems += [f"{name!r} has no button {index}" for index in sorted(buttons)]
    return problems


def _part_parameters(components: list, part: str) -> list:
    for component in components:
        if isinstance(component, dict) and component.get("type") == part:
            return list(component.get("parameters") or [])
    return []


# --- the builder's parameter form ----------------------------------------------------------

CONTEXT_CHARS = 30  # characters of the template's text shown each side of a placeholder


@dataclass(frozen=True)
class ParameterField:
    """One input of the builder's parameter form: a value a catalogue template asks for."""

    key: str  # the input's name in the form: "header.1", "body.first_name", "button.0"
    part: str  # "header", "body" or "button"
    kind: str  # "text", "image", "document", "video" or "payload" (a quick reply's)
    label: str  # 'Body {{1}}', 'Header image link', 'Button 1 "Track" link {{1}}'
    context: str  # the template's own text around it: "Hi {{1}}, order {{2}} is ready"
    name: str | None = None  # parameter_name, for a NAMED template's header and body
    index: int | None = None  # a button's position
    required: bool = True  # a quick reply's payload may be left out (Meta sends its text)


def _around(text: str, placeholder: str) -> str:
    at = text.find(placeholder)
    if at < 0 or len(text) <= 2 * CONTEXT_CHARS + len(placeholder):
        return text
    start, end = max(0, at - CONTEXT_CHARS), min(len(text), at + len(placeholder) + CONTEXT_CHARS)
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


def _placeholder_of(text: str, name: str) -> str:
    found = re.search(r"\{\{\s*" + re.escape(name) + r"\s*\}\}", text)
    return found.group(0) if found else "{{" + name + "}}"


def is_named(entry: Mapping[str, Any]) -> bool:
    """Meta's NAMED parameter format: parameters carry their `parameter_name`."""
    return str(entry.get("parameter_format") or "").upper() == "NAMED"


def parameter_fields(entry: Mapping[str, Any]) -> list[ParameterField]:
    """The inputs a catalogue template asks for, in the order Meta shows its parts: the
    header's parameter (a text placeholder or a media link, per its format), each body
    placeholder, each URL button's suffix and each quick reply's payload."""
    components = entry.get("components")
    named = is_named(entry)
    fields: list[ParameterField] = []
    header = _part(components, "HEADER")
    header_format = str(header.get("format") or "TEXT").upper() if header else ""
    if header_format == "TEXT":
        text = str(header.get("text") or "")
        for name in _placeholders(text):
            fields.append(ParameterField(f"header.{name}", "header", "text", f"Header {{{{{name}}}}}",
                                         _around(text, _placeholder_of(text, name)), name if named else None))
    elif header_format.lower() in MEDIA:
        kind = header_format.lower()
        fields.append(ParameterField(f"header.{kind}", "header", kind, f"Header {kind} link",
                                     f"an https:// link to the {kind} shown above the text"))
    body = str(_part(components, "BODY").get("text") or "")
    for name in _placeholders(body):
        fields.append(ParameterField(f"body.{name}", "body", "text", f"Body {{{{{name}}}}}",
                                     _around(body, _placeholder_of(body, name)), name if named else None))
    for index, button in enumerate(catalogue_buttons(components)):
        kind, words = str(button.get("type", "")).upper(), str(button.get("text") or "")
        if kind == "URL" and _placeholders(button.get("url")):
            url = str(button.get("url"))
            name = _placeholders(url)[0]
            fields.append(ParameterField(f"button.{index}", "button", "text",
                                         f'Button {index + 1} "{words}" link {{{{{name}}}}}', url, index=index))
        elif kind == "QUICK_REPLY":
            fields.append(ParameterField(f"button.{index}", "button", "payload",
                                         f'Button {index + 1} "{words}" reply payload',
                                         "sent back when the lead taps it; blank: the button's text",
                                         index=index, required=False))
    return fields


def _parameter(field: ParameterField, value: str) -> dict:
    if field.kind in MEDIA:
        return {"type": field.kind, field.kind: {"link": value}}
    if field.kind == "payload":
        return {"type": "payload", "payload": value}
    return {"type": "text", "text": value, **({"parameter_name": field.name} if field.name else {})}


def components_of(fields: list[ParameterField], values: Mapping[str, str]) -> tuple[list[dict], dict[str, str]]:
    """The form's values as Meta's `components` (a blank value stays blank, for the API's
    check to refuse; a blank optional payload is left out), and which input each
    parameter came from: `{"components.1.parameters.0": "body.1"}`, paths as the API's
    errors write them."""
    components: list[dict] = []
    paths: dict[str, str] = {}
    for part in ("header", "body"):
        mine = [f for f in fields if f.part == part]
        if mine:
            c = len(components)
            components.append({"type": part, "parameters": [_parameter(f, values.get(f.key, "")) for f in mine]})
            paths.update({f"components.{c}.parameters.{p}": f.key for p, f in enumerate(mine)})
    for f in fields:
        if f.part == "button" and (f.required or values.get(f.key)):
            paths[f"components.{len(components)}.parameters.0"] = f.key
            components.append({"type": "button", "sub_type": "quick_reply" if f.kind == "payload" else "url",
                               "index": str(f.index), "parameters": [_parameter(f, values.get(f.key, ""))]})
    return components, paths


def form_values(fields: list[ParameterField], components: Any) -> dict[str, str] | None:
    """A step's stored components as the form's values, or None when the form cannot show
    them as they are (other parameter types, parts the template lacks): then the builder
    keeps them as JSON rather than change them."""
    if not components:
        return {}  # nothing given yet: blank inputs
    if not isinstance(components, list) or not all(isinstance(c, dict) for c in components):
        return None
    values: dict[str, str] = {}
    for component in components:
        kind = component.get("type")
        parameters = component.get("parameters") if isinstance(component.get("parameters"), list) else []
        if kind == "button":
            mine = [f for f in fields if f.part == "button" and str(f.index) == str(component.get("index"))]
        else:
            mine = [f for f in fields if f.part == kind]
        for field, parameter in zip(mine, parameters, strict=False):
            if not isinstance(parameter, dict):
                return None
            if field.name and parameter.get("parameter_name") != field.name:
                field = next((f for f in mine if f.name == parameter.get("parameter_name")), field)
            value = parameter.get(field.kind)
            values[field.key] = value.get("link") if isinstance(value, dict) else value
    if not all(isinstance(v, str) for v in values.values()):
        return None
    canonical = [{**c, "index": str(c["index"])} if "index" in c else c for c in components]
    return values if components_of(fields, values)[0] == canonical else None
