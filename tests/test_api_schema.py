"""Property-based tests of the HTTP service from its own OpenAPI schema (schemathesis).

Schemathesis generates valid and invalid requests for every operation the schema describes; the
service must never answer with a 5xx, and its responses (status codes, content types, bodies and
streamed events) must match the schema it serves.  Runs
against the real app on a fresh index of the sample articles (it ingests and deletes).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from assistant.answer import Assistant
from assistant.api import create_app
from assistant.settings import get_settings
from index import ingest
from index.embeddings import Embedder
from tests.conftest import SAMPLES

KEY = "schema-key-0123456789abcdef"

pytestmark = pytest.mark.slow  # about 20 s: a fresh index, then ~100 generated requests


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[object]:
    data = get_settings(data_dir=tmp_path_factory.mktemp("schema") / "data", api_key=KEY)
    ingest([SAMPLES], settings=data, embedder=embedder)
    app = create_app(assistant=Assistant(data, embedder=embedder))
    yield schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_request_makes_the_server_fail(case: schemathesis.Case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {KEY}"})
    # Schemathesis also drops or mangles the Authorization header on purpose: that must be a 401.
    keyed = response.request.headers.get("authorization") == f"Bearer {KEY}"
    assert (response.status_code == 401) != keyed
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
