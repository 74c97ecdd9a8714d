"""Generated tables of every target type through every source kind into every destination (replace).

One example is one generated table (1-8 columns, 1-60 rows) written by one source kind and
loaded into each destination: one case per destination. Every cell is compared with the
oracle, every rejected row's record with the rejection the oracle expects.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl_platform_tests.conftest import examples
from etl_platform_tests.fidelity import harness
from etl_platform_tests.fidelity.platform import DESTINATION_KINDS

pytestmark = pytest.mark.fidelity

EXAMPLES = 27  # per source kind, each loaded into the 4 destinations: 18 x 27 x 4 = 1,944 cases


@pytest.mark.parametrize("source", list(harness.SOURCE_KINDS))
def test_every_value_lands_exactly_or_is_rejected_with_its_reason(env, source):
    kind = harness.SOURCE_KINDS[source]
    for needed in (*kind.needs, "postgres"):
        env.services(needed)

    @settings(max_examples=examples(EXAMPLES), phases=harness.phases())
    @given(data=st.data())
    def case(data):
        table = data.draw(harness.table_strategy(kind), label="table")
        result = harness.check_replace(env, kind, DESTINATION_KINDS, table, data, test=f"types[{source}]")
        harness.assert_exact(result, table)

    case()
