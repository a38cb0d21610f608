"""The OpenAPI document the app serves at /openapi.json: FastAPI's, with every example whole.

FastAPI drops every null from the document, the examples' own included, and an example
without its `"error": null` is no longer valid against its schema. The models' examples
(schemas.examples) and the routes' own (schemas.route_example) are put back as written.
"""

from __future__ import annotations

import json

from fastapi import FastAPI

from drumbeat.schemas import MODEL_EXAMPLES, ROUTE_EXAMPLES


def document(app: FastAPI) -> dict:
    spec = FastAPI.openapi(app)  # built once, then cached by FastAPI; restoring again is harmless
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        if name in MODEL_EXAMPLES:
            schema["examples"] = MODEL_EXAMPLES[name]
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            contents = [(operation.get("requestBody") or {}).get("content") or {}]
            contents += [r.get("content") or {} for r in operation.get("responses", {}).values()]
            for content in contents:
                for media in content.values():
                    if "example" in media:
                        key = json.dumps(media["example"], sort_keys=True)
                        media["example"] = ROUTE_EXAMPLES.get(key, media["example"])
    return spec
