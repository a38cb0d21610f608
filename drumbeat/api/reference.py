"""The HTTP API reference (docs/api-reference.md), rendered from the OpenAPI document the
server serves at /openapi.json, and the check that every route documents itself fully.

Everything shown comes from the document: roles are the scopes of a route's bearer
requirement (api/deps.py), examples are the models' own (`examples(...)` in schemas.py) or
a route's `openapi_extra`/`responses`. `drumbeat docs api-reference` writes the file;
tests/api/test_api_reference.py keeps it equal to a fresh render.
"""

from __future__ import annotations

import json
import re
from typing import Any

COMMAND = "drumbeat docs api-reference"
METHODS = ("get", "post", "put", "patch", "delete")
ROLE_WORDS = {"viewer": "any user of the workspace (viewer, operator, owner)",
              "operator": "operator or owner", "owner": "owners only"}


# --- reading the document -------------------------------------------------------------------

def operations(spec: dict) -> list[tuple[str, str, dict]]:
    """(METHOD, path, operation) in the document's order."""
    return [(method.upper(), path, op) for path, item in spec.get("paths", {}).items()
            for method, op in item.items() if method in METHODS]


def resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def role_of(op: dict) -> str | None:
    """The role a route needs (the scope of its bearer requirement), or None without a token."""
    for requirement in op.get("security") or []:
        for scopes in requirement.values():
            if scopes:
                return scopes[0]
    return None


def example_of(spec: dict, media: dict) -> tuple[bool, Any]:
    """(found, example) of a media type object: its own `example`/`examples`, else its schema's."""
    if "example" in media:
        return True, media["example"]
    if media.get("examples"):
        return True, next(iter(media["examples"].values())).get("value")
    schema = media.get("schema") or {}
    for part in [schema, *schema.get("anyOf", [])]:  # an optional body: anyOf [the model, null]
        part = resolve(spec, part)
        if part.get("examples"):
            return True, part["examples"][0]
    return False, None


def success(op: dict) -> tuple[str, dict] | None:
    for status, response in sorted(op.get("responses", {}).items()):
        if status.startswith("2"):
            return status, response
    return None


def errors(op: dict) -> list[tuple[str, dict]]:
    return [(s, r) for s, r in sorted(op.get("responses", {}).items()) if s[0] in "45"]


def problems(spec: dict) -> list[str]:
    """What each route lacks for its reference: a request example (when it takes a body), a
    success response with an example (unless it answers 204), the error responses its role
    and path imply (401; 403 above viewer; 404 with an id in the path) and an example error
    envelope for each error it declares."""
    out = []
    for method, path, op in operations(spec):
        where = f"{method} {path}"
        for media_type, media in (op.get("requestBody") or {}).get("content", {}).items():
            if not example_of(spec, media)[0]:
                out.append(f"{where}: no request example for {media_type} (give its model "
                           f"`model_config = examples({{...}})` in drumbeat/schemas.py, or `openapi_extra`)")
        ok = success(op)
        if ok is None:
            out.append(f"{where}: no success response declared")
        elif ok[0] != "204":
            content = ok[1].get("content") or {}
            if not content:
                out.append(f"{where}: the {ok[0]} response declares no content")
            for media_type, media in content.items():
                if not example_of(spec, media)[0]:
                    out.append(f"{where}: no example of the {ok[0]} response ({media_type}; give its "
                               f"response_model `model_config = examples({{...}})`, or `responses=`)")
        declared = {s for s, _ in errors(op)}
        role = role_of(op)
        needed = set()
        if op.get("security"):
            needed.add("401")
        if role in ("operator", "owner"):
            needed.add("403")
        if "{" in path:
            needed.add("404")
        for status in sorted(needed - declared):
            out.append(f"{where}: error {status} not declared (responses=error_responses(...))")
        for status, response in errors(op):
            if not any(example_of(spec, m)[0] for m in (response.get("content") or {}).values()):
                out.append(f"{where}: the {status} error has no example envelope")
    return out


# --- rendering ------------------------------------------------------------------------------

def _anchor(*parts: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def type_text(spec: dict, schema: dict) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return f"[{name}](#{_anchor('schema', name)})"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(type_text(spec, part) for part in schema[key])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {type_text(spec, schema.get('items') or {})}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict) \
            and schema["additionalProperties"]:
        return f"object of {type_text(spec, schema['additionalProperties'])}"
    if kind is None:
        return "any"
    return f"{kind} ({schema['format']})" if "format" in schema else str(kind)


def _constraints(schema: dict) -> str:
    words = []
    for key, word in (("minLength", "min length"), ("maxLength", "max length"), ("minimum", "≥"),
                      ("exclusiveMinimum", ">"), ("maximum", "≤"), ("minItems", "min items"),
                      ("maxItems", "max items"), ("pattern", "pattern")):
        if key in schema:
            value = f"`{schema[key]}`" if key == "pattern" else schema[key]
            words.append(f"{word} {value}")
    if "default" in schema:
        words.append(f"default `{json.dumps(schema['default'])}`")
    return "; ".join(words)


def fields_table(spec: dict, schema: dict) -> list[str]:
    schema = resolve(spec, schema)
    properties = schema.get("properties") or {}
    if not properties:
        return []
    required = set(schema.get("required") or [])
    lines = ["| Field | Type | Required | Description |", "|---|---|---|---|"]
    for name, prop in properties.items():
        notes = " ".join(p for p in (prop.get("description", ""), _constraints(prop)) if p)
        lines.append(f"| `{name}` | {_cell(type_text(spec, prop))} | {'yes' if name in required else 'no'} "
                     f"| {_cell(notes)} |")
    return lines


def _example_block(value: Any, media_type: str) -> list[str]:
    if isinstance(value, str) and "json" not in media_type:
        return [f"```{'csv' if 'csv' in media_type else 'text'}", value.rstrip("\n"), "```"]
    return ["```json", json.dumps(value, indent=2, ensure_ascii=False), "```"]


def _media_section(spec: dict, title: str, content: dict) -> list[str]:
    out = []
    for media_type, media in content.items():
        schema = media.get("schema") or {}
        name = f", {type_text(spec, schema)}" if "$ref" in schema or "anyOf" in schema else ""
        out += [f"**{title}** (`{media_type}`{name})", ""]
        table = fields_table(spec, schema)
        if table:
            out += table + [""]
        found, value = example_of(spec, media)
        if found:
            out += ["Example:", ""] + _example_block(value, media_type) + [""]
    return out


def _parameters(spec: dict, op: dict) -> list[str]:
    params = op.get("parameters") or []
    if not params:
        return []
    lines = ["**Parameters**", "", "| Name | In | Type | Required | Description |", "|---|---|---|---|---|"]
    for p in params:
        schema = p.get("schema") or {}
        notes = " ".join(x for x in (p.get("description", ""), _constraints(schema)) if x)
        lines.append(f"| `{p['name']}` | {p['in']} | {_cell(type_text(spec, schema))} "
                     f"| {'yes' if p.get('required') else 'no'} | {_cell(notes)} |")
    return lines + [""]


def _error_codes(spec: dict, response: dict) -> str:
    for media in (response.get("content") or {}).values():
        error = resolve(spec, media.get("schema") or {}).get("properties", {}).get("error")
        if error:
            code = resolve(spec, error).get("properties", {}).get("code", {})
            values = code.get("enum") or ([code["const"]] if "const" in code else [])
            return ", ".join(f"`{v}`" for v in values)
    return ""


def _operation(spec: dict, method: str, path: str, op: dict) -> list[str]:
    out = [f'<a id="{_anchor(method, path)}"></a>', "", f"### `{method} {path}`", ""]
    if op.get("summary"):
        out += [f"*{op['summary']}*", ""]
    role = role_of(op)
    if role:
        out += [f"Role: **{role}** — {ROLE_WORDS.get(role, role)}; bearer token.", ""]
    else:
        out += ["No bearer token." + (" Signed by the provider instead (see the description)."
                                      if path.startswith("/webhooks/") else ""), ""]
    if op.get("description"):
        out += [op["description"].strip(), ""]
    out += _parameters(spec, op)
    if op.get("requestBody"):
        out += _media_section(spec, "Request body", op["requestBody"].get("content", {}))
    ok = success(op)
    if ok:
        status, response = ok
        if response.get("content"):
            out += _media_section(spec, f"Response {status}", response["content"])
        else:
            out += [f"**Response {status}**: {response.get('description', '')}", ""]
    errs = errors(op)
    if errs:
        out += ["**Errors**", "", "| Status | Codes | When |", "|---|---|---|"]
        out += [f"| {s} | {_error_codes(spec, r)} | {_cell(r.get('description', ''))} |" for s, r in errs]
        out.append("")
        shown = _shown_error(errs)
        for media_type, media in (shown[1].get("content") or {}).items():
            found, value = example_of(spec, media)
            if found:
                out += [f"Example error ({shown[0]}):", ""] + _example_block(value, media_type) + [""]
                break
    return out


def _shown_error(errs: list[tuple[str, dict]]) -> tuple[str, dict]:
    """The route's own error (409, 404, 403 ...) rather than one every request may meet."""
    by_status = dict(errs)
    for status in ("409", "429", "404", "403", "422"):
        if status in by_status:
            return status, by_status[status]
    return errs[0]


def _referenced(spec: dict, value: Any, seen: set[str]) -> None:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name not in seen:
                seen.add(name)
                _referenced(spec, spec["components"]["schemas"][name], seen)
        for item in value.values():
            _referenced(spec, item, seen)
    elif isinstance(value, list):
        for item in value:
            _referenced(spec, item, seen)


def render(spec: dict) -> str:
    """docs/api-reference.md for this OpenAPI document (a pure function of it)."""
    ops = operations(spec)
    groups: dict[str, list[tuple[str, str, dict]]] = {}
    for method, path, op in ops:
        groups.setdefault((op.get("tags") or ["other"])[-1], []).append((method, path, op))
    out = [
        f"# {spec['info']['title']} HTTP API reference", "",
        f"<!-- Generated by `{COMMAND}` from the served OpenAPI document; do not edit by hand. -->", "",
        "Every route the server documents at `/openapi.json` (interactive: `/docs`), with the role it "
        "needs, its parameters, body and answer fields, examples and errors. The contract in words, "
        "with the rules behind each field: [api.md](api.md).", "",
        "Authentication: `Authorization: Bearer <token>` (a user's token: `drumbeat init-workspace`, "
        "`POST /api/v1/users`). Roles rank owner > operator > viewer; a route open to a role is open "
        "to the roles above it. Every error has the body "
        "`{\"error\": {\"code\", \"message\", \"details\"}}`; an id of another workspace answers 404 "
        "like one that does not exist.", "",
        "## Routes", "",
    ]
    for tag, items in groups.items():
        out.append(f"- **{tag}**: " + ", ".join(f"[`{m} {p}`](#{_anchor(m, p)})" for m, p, _ in items))
    out.append("")
    for tag, items in groups.items():
        out += [f"## {tag[:1].upper()}{tag[1:]}", ""]
        for method, path, op in items:
            out += _operation(spec, method, path, op)
    seen: set[str] = set()
    _referenced(spec, spec.get("paths", {}), seen)
    names = sorted(n for n in seen if not n.endswith(("Error", "ErrorDetail")))
    if names:
        out += ["## Objects", "", "The shapes the routes above refer to.", ""]
        for name in names:
            schema = spec["components"]["schemas"][name]
            out += [f'<a id="{_anchor("schema", name)}"></a>', "", f"### {name}", ""]
            if schema.get("description"):
                out += [_cell(schema["description"]), ""]
            table = fields_table(spec, schema)
            if table:
                out += table + [""]
            elif "enum" in schema:
                out += [type_text(spec, schema).capitalize() + ".", ""]
    return "\n".join(out).rstrip("\n") + "\n"
