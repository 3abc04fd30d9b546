"""Schemathesis over the JSON API's OpenAPI schema, in process (Django's WSGI handler).

Every operation gets a bounded number of generated requests (valid and invalid bodies, path
parameters, headers) from a fixed seed, each validated with every check schemathesis runs by
default: no server error, only documented statuses, content types, headers and bodies as
documented, schema-violating requests refused and schema-valid ones accepted. Alice (with a
provider) makes the requests with her API token; half of the generated project ids are
replaced by one of her real projects so the success paths of the project routes run too,
not only their 404.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, seed, settings

from accounts.services import create_api_token
from projects.api import api
from tests.projects.conftest import make_project

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(240)]

EXAMPLES_PER_OPERATION = 25  # keeps the run under a minute on a busy 2-core machine


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    # Django's WSGI handler closes the database connection after each request, and the
    # test's transaction lives on it (Django's test client unhooks the same handler).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def alice_token(alice, alice_provider, settings, tmp_path) -> str:
    settings.DATA_DIR = tmp_path
    return create_api_token(alice, "fuzz")[1]


@pytest.fixture
def alice_site(alice):
    return make_project(alice)


CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {
        "checks": {
            # Besides the defaults, a schema-valid request may be refused as the schema
            # documents: 400 (a model that is not one of the user's, a blank prompt) and 412
            # (no provider yet). Anything else, 422 included, fails the run.
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "412"]
            }
        }
    }
)
# The schema the API serves at /api/openapi.json, read without a request (collection time
# has no database); requests go to Django's WSGI handler in this process.
schema = schemathesis.openapi.from_dict(
    json.loads(json.dumps(api.get_openapi_schema())), config=CONFIG
)
schema.app = get_wsgi_application()


@schema.parametrize()
@seed(20261129)
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,  # nothing saved between runs: each run is the seed's
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
    suppress_health_check=list(HealthCheck),
)
def test_it_answers_generated_requests_as_its_schema_says(case, alice_token, alice_site):
    project_id = case.path_parameters.get("project_id") if case.path_parameters else None
    if isinstance(project_id, str) and len(project_id) % 2 == 0:
        case.path_parameters["project_id"] = alice_site.id
    case.call_and_validate(headers={"Authorization": f"Bearer {alice_token}"})
