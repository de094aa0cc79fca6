"""The OpenAPI document is generated from the code and served with a browsable page."""

from __future__ import annotations

EXPECTED_PATHS = {
    "/api/v1/auth/token": {"post", "delete"},
    "/api/v1/me": {"get"},
    "/api/v1/communities": {"get", "post"},
    "/api/v1/communities/{cid}": {"get", "patch"},
    "/api/v1/communities/{cid}/buildings": {"get", "post"},
    "/api/v1/communities/{cid}/units": {"get", "post"},
    "/api/v1/communities/{cid}/access-points": {"get", "post"},
    "/api/v1/communities/{cid}/devices": {"get", "post"},
    "/api/v1/devices/{device_id}": {"get", "patch"},
    "/api/v1/devices/{device_id}/rotate-secret": {"post"},
    "/api/v1/users": {"get", "post"},
    "/api/v1/users/{user_id}": {"get", "patch"},
}


def test_document_lists_every_resource(client) -> None:
    answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    spec = answer.json
    assert spec["openapi"] == "3.0.3"  # what the bundled Swagger UI 4 renders
    for path, methods in EXPECTED_PATHS.items():
        assert path in spec["paths"], path
        assert methods <= set(spec["paths"][path]), path
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["paths"]["/api/v1/auth/token"]["post"]["security"] == []


def test_document_matches_the_routes(app, client) -> None:
    """Every /api/v1 route the app serves appears in the document (it cannot drift)."""
    spec = client.get("/api/v1/openapi.json").json
    documented = {path.replace("{", "<").replace("}", ">") for path in spec["paths"]}
    served = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/")
        and "docs" not in rule.rule
        and not rule.rule.endswith("openapi.json")
    }
    assert served == documented


def test_request_schemas_forbid_unknown_fields(client) -> None:
    spec = client.get("/api/v1/openapi.json").json
    building = spec["components"]["schemas"]["Building"]
    assert "community_id" in building["properties"]
    assert building["properties"]["community_id"]["readOnly"] is True


def test_docs_page_works_offline(client) -> None:
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert "/api/v1/docs/assets/swagger-ui-bundle.js" in page.text
    assert "//" not in page.text.split("/api/v1/docs/assets/")[0].split("<link href=")[-1]
    bundle = client.get("/api/v1/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.data) > 100_000
