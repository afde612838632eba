"""Property-based tests of the HTTP service from its own OpenAPI schema (schemathesis).

For every operation the schema describes, schemathesis makes the requests: the schema's own
examples, its deterministic coverage cases (boundary values, missing or malformed parameters,
wrong methods and content types, dropped credentials), then a bounded, derandomized Hypothesis
run of valid and invalid requests.  The service must never answer with a 5xx, must answer 401
exactly when the request goes without the key, and its responses (status codes, content types,
bodies and streamed events) must match the schema it serves.  Runs against the real app on a
fresh index of the sample articles (it ingests and deletes).

The tests drive schemathesis through its Python API (``schemathesis.openapi.from_asgi``,
``APIOperation.as_strategy``, ``Case.call``, ``Case.validate_response``) inside plain pytest
tests, not through its pytest plugin (``schemathesis.pytest.from_fixture``), whose internals
break with new pytest releases.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from assistant.answer import Assistant
from assistant.api import create_app
from assistant.settings import get_settings
from index.embeddings import Embedder
from tests.conftest import SAMPLES

KEY = "schema-key-0123456789abcdef"
KEYED = f"Bearer {KEY}"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ_EXAMPLES = 8  # per operation, in each run: valid and invalid requests alike

# Every operation of the service (test_every_operation_is_tested fails on a new one).
OPERATIONS = [
    "GET /healthz",
    "POST /v1/ask",
    "POST /v1/timeline",
    "GET /v1/articles",
    "POST /v1/articles",
    "GET /v1/articles/{article_id}",
    "DELETE /v1/articles/{article_id}",
    "GET /v1/stats",
    "GET /v1/models",
    "POST /v1/chat/completions",
    "POST /v1/watch/run",
    "GET /v1/watch",
]

pytestmark = pytest.mark.slow  # about a minute: a fresh index, then ~600 requests


@pytest.fixture(scope="module")
def api_schema(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Iterator[schemathesis.BaseSchema]:
    data = get_settings(data_dir=tmp_path_factory.mktemp("schema") / "data", api_key=KEY)
    app = create_app(assistant=Assistant(data, embedder=embedder))
    # The sample articles go in through the service itself, as a user would upload them.
    client = TestClient(app)
    for path in sorted(SAMPLES.glob("*.jsonl")):
        uploaded = client.post(
            "/v1/articles",
            headers={"Authorization": KEYED},
            files={"file": (path.name, path.read_bytes(), "application/x-ndjson")},
        )
        assert uploaded.status_code == 200, uploaded.text
        assert uploaded.json()["added"], uploaded.text
    yield schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_operation_is_tested(api_schema: schemathesis.BaseSchema) -> None:
    # .ok() raises on an operation schemathesis cannot read.
    assert sorted(result.ok().label for result in api_schema.get_all_operations()) == sorted(
        OPERATIONS
    )


def call_and_check(case: schemathesis.Case) -> None:
    """Send the case with the key and check the answer against the schema."""
    response = case.call(headers={"Authorization": KEYED})
    # Some cases drop the Authorization header, ours included, on purpose: only those get a 401.
    sent = response.request.headers.get("authorization")
    keyed = sent == KEYED
    assert (response.status_code == 401) != keyed, (
        f"{response.status_code} with Authorization {sent!r}:\n"
        f"    {case.as_curl_command(headers=dict(response.request.headers))}"
    )
    case.validate_response(response, checks=CHECKS)  # raises naming each failed check, with curl


def schema_cases(operation: schemathesis.APIOperation) -> Iterator[schemathesis.Case]:
    """The deterministic cases: the schema's own examples, then its coverage cases."""
    for strategy in operation.get_strategies_from_examples():
        yield draw_one(strategy)
    schema = operation.schema
    yield from schema.iter_coverage_cases(
        operation,
        generation_modes=list(schemathesis.GenerationMode),
        generation_config=schema.config.generation_for(operation=operation, phase="coverage"),
    )


def derandomized(max_examples: int) -> settings:
    """A bounded Hypothesis run that generates the same cases every time."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )


def draw_one(strategy: st.SearchStrategy[schemathesis.Case]) -> schemathesis.Case:
    """One case from the strategy, the same on every run."""
    cases: list[schemathesis.Case] = []

    @derandomized(max_examples=1)
    @given(case=strategy)
    def collect(case: schemathesis.Case) -> None:
        cases.append(case)

    collect()
    return cases[0]


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_request_makes_the_server_fail(api_schema: schemathesis.BaseSchema, label: str) -> None:
    method, path = label.split(" ", 1)
    operation = api_schema[path][method]

    for case in schema_cases(operation):
        call_and_check(case)

    # Valid requests and invalid ones (wrong types, missing fields, odd headers) alike.
    fuzzed = st.one_of(
        [operation.as_strategy(generation_mode=mode) for mode in schemathesis.GenerationMode]
    )

    @derandomized(max_examples=FUZZ_EXAMPLES)
    @given(case=fuzzed)
    def fuzz(case: schemathesis.Case) -> None:
        call_and_check(case)

    fuzz()
