"""The mutations the smoke test sends to the read-only webserver are valid requests of this Dagster's API.

The read-only webserver refuses a mutation before it looks at the arguments, so a request with
a wrong argument name or type would be "refused" too. Checked here against the GraphQL schema
of the installed dagster-webserver, without a server: the queries, and the variables they get.
"""

import pytest
from dagster_graphql.schema import create_schema
from graphql import GraphQLError, parse, validate
from graphql.execution.values import get_variable_values

from etl_platform_tests.deploy.read_only import MUTATIONS

CONTEXT = {
    "run_id": "a-run-id",
    "schedule": "a_schedule",
    "schedule_id": "a-schedule-id",
    "sensor": "a_sensor",
    "sensor_id": "a-sensor-id",
}


@pytest.mark.parametrize(("name", "query", "variables"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_every_mutation_is_a_valid_request(name, query, variables):
    schema = create_schema().graphql_schema
    document = parse(query)
    assert [e.message for e in validate(schema, document)] == []
    (operation,) = document.definitions
    coerced = get_variable_values(schema, operation.variable_definitions, variables(CONTEXT))
    assert not isinstance(coerced, list) or not any(isinstance(e, GraphQLError) for e in coerced), [
        str(e) for e in coerced
    ]
