"""Schemathesis against the admin API's published OpenAPI document, in process: requests
generated from the document, without a token and with each role's, find no server
error and no response that breaks the document's schemas."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from test_admin_auth import MONITORING, OPERATOR, gateway, plan

from gateway.http.api import create_app

# Built at import: schemathesis reads the document when the tests are collected.
_FOLDER = Path(tempfile.mkdtemp(prefix="vrgw-openapi-"))
APP = create_app(gateway(plan(_FOLDER)))
SCHEMA = schemathesis.openapi.from_asgi(
    "/openapi.json", APP, headers={"Authorization": f"Bearer {MONITORING}"}
).exclude(
    # a server-sent event stream never ends: its first event is tested elsewhere
    path="/api/v1/availability/events"
)
HEADERS = {
    "anonymous": {},
    "monitoring": {"Authorization": f"Bearer {MONITORING}"},
    "operator": {"Authorization": f"Bearer {OPERATOR}"},
}


@pytest.mark.parametrize("who", list(HEADERS))
@SCHEMA.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_error_and_no_response_off_its_schema(case: schemathesis.Case, who: str) -> None:
    case.call_and_validate(
        headers=HEADERS[who], checks=[not_a_server_error, response_schema_conformance]
    )
