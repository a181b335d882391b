"""Checks recorded GitHub API exchanges against GitHub's OpenAPI description.

usage: openapi_check.py SPEC_JSON < exchanges.json
Each exchange is {"method", "path", "request", "status", "response"}. For each, the operation must
exist, the request body must match its schema, the status must be one the operation documents
(401 and rate-limit answers are accepted for any authenticated call: GitHub answers them everywhere,
the description lists them on a few operations only), and the response body must match that status's schema.
"""
import json
import re
import sys
import warnings

import jsonschema

warnings.filterwarnings("ignore", category=DeprecationWarning)

spec = json.load(open(sys.argv[1]))
exchanges = json.load(sys.stdin)


def nullable_to_jsonschema(node):
    """OpenAPI 3.0 says `nullable: true`; JSON Schema says `type: [..., "null"]`."""
    if isinstance(node, dict):
        if node.get("nullable") is True:
            t = node.get("type")
            if isinstance(t, str):
                node["type"] = [t, "null"]
            elif "type" not in node:
                node = {"anyOf": [dict(node, nullable=False), {"type": "null"}]}
        return {k: nullable_to_jsonschema(v) for k, v in node.items()}
    if isinstance(node, list):
        return [nullable_to_jsonschema(v) for v in node]
    return node


components = nullable_to_jsonschema(spec["components"])
templates = []
for template, item in spec["paths"].items():
    pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
    templates.append((re.compile(pattern), template, item))


def validate(schema, instance):
    root = dict(nullable_to_jsonschema(schema))
    root["components"] = components
    jsonschema.Draft7Validator(root).validate(instance)


failures = []
for x in exchanges:
    where = f"{x['method']} {x['path']} -> {x['status']}"
    matches = [(t, item) for rx, t, item in templates if rx.match(x["path"])]
    # The most literal template wins (fewest parameters).
    matches.sort(key=lambda m: m[0].count("{"))
    op = matches[0][1].get(x["method"].lower()) if matches else None
    if op is None:
        failures.append(f"{where}: no such operation in the description")
        continue
    try:
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if body is not None and x["request"] is not None:
            validate(body, x["request"])
        responses = op["responses"]
        status = str(x["status"])
        if status in responses:
            response = responses[status]
        elif status.startswith("5"):
            # An outage: GitHub may answer 5xx on any call, with any body.
            continue
        elif status == "401" or (status in ("403", "429") and "rate limit" in str((x["response"] or {}).get("message", ""))):
            # GitHub answers 401, and rate limits (403/429), on any call; the description lists
            # them on a few operations only.
            response = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/basic-error"}}}}
        else:
            failures.append(f"{where}: status not documented ({sorted(responses)})")
            continue
        if "$ref" in response:
            response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if schema is not None:
            validate(schema, x["response"])
        elif x["response"] not in (None, {}):
            failures.append(f"{where}: a body where the description has none")
    except jsonschema.ValidationError as e:
        failures.append(f"{where}: {e.message} at {list(e.absolute_path)}")

for f in failures:
    print(f)
print(f"{len(exchanges) - len(failures)} of {len(exchanges)} exchanges match GitHub's OpenAPI description")
sys.exit(1 if failures else 0)
