"""The file sensor's ledger through its cursor: every ledger comes back as it was, a cursor of
the first version still reads, and a damaged cursor starts a new ledger instead of failing."""

import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from etl_platform.automation.ledger import DIGEST_BYTES, MAX_ATTEMPT, Failure, Flight, Ledger, Member
from etl_platform_tests.conftest import examples

digests = st.binary(min_size=DIGEST_BYTES, max_size=DIGEST_BYTES)
seconds = st.integers(min_value=0, max_value=2**32 - 1)
attempts = st.integers(min_value=0, max_value=MAX_ATTEMPT)
members = st.builds(Member, digests, digests, attempts, st.booleans())
flights = st.builds(Flight, seconds, st.lists(members, min_size=1, max_size=5), st.none() | digests)
run_ids = st.none() | st.uuids().map(str) | st.text(min_size=1, max_size=60)
failures = st.builds(
    Failure,
    attempts,
    run_ids,
    st.floats(min_value=0, max_value=4e9, allow_nan=False),
    st.sets(digests, max_size=4),
    st.booleans(),
    st.booleans(),
)
ledgers = st.builds(
    Ledger,
    pending=st.dictionaries(digests, seconds, max_size=5),
    taken=st.sets(digests, max_size=5),
    contents=st.lists(digests, max_size=5, unique=True).map(dict.fromkeys),
    flights=st.lists(flights, max_size=4),
    failed=st.dictionaries(digests, failures, max_size=4),
    skipped=st.sets(digests, max_size=3),
    requests_after=st.none() | st.integers(min_value=0, max_value=2**53),
    reported=st.none() | digests,
)


@settings(max_examples=examples(200))
@given(ledger=ledgers)
def test_a_ledger_comes_back_from_its_cursor_as_it_was(ledger):
    assert Ledger.from_cursor(ledger.to_cursor()) == ledger


@settings(max_examples=examples(200))
@given(ledger=ledgers, data=st.data())
def test_a_damaged_cursor_starts_a_new_ledger(ledger, data):
    cursor = ledger.to_cursor()
    raw = json.loads(cursor)
    packed_fields = sorted(k for k, v in raw.items() if isinstance(v, str) and v)
    if packed_fields:  # one field cut short, as a cursor truncated in storage would be
        field = data.draw(st.sampled_from(packed_fields), label="field")
        as_hex = field == "reported"
        packed = bytes.fromhex(raw[field]) if as_hex else base64.b64decode(raw[field])
        cut = data.draw(st.integers(min_value=1, max_value=len(packed)), label="bytes cut")
        raw[field] = packed[:-cut].hex() if as_hex else base64.b64encode(packed[:-cut]).decode()
        damaged = Ledger.from_cursor(json.dumps(raw))  # never an exception
        assert damaged.rebuilt or damaged != ledger
    for text in (cursor[: len(cursor) // 2], "", "{}", '{"v": 3}', "not json"):
        assert Ledger.from_cursor(text).rebuilt


def test_a_cursor_of_the_first_version_reads_as_it_was():
    pending, taken, contents = (
        b"p" * DIGEST_BYTES + (7).to_bytes(4, "big"),
        b"t" * DIGEST_BYTES,
        b"c" * DIGEST_BYTES * 2,
    )
    first = json.dumps(
        {
            "v": 1,
            **{
                k: base64.b64encode(v).decode()
                for k, v in {"pending": pending, "taken": taken, "contents": contents}.items()
            },
        }
    )
    ledger = Ledger.from_cursor(first)
    assert not ledger.rebuilt and ledger.pending == {b"p" * DIGEST_BYTES: 7} and ledger.taken == {b"t" * DIGEST_BYTES}
    assert list(ledger.contents) == [b"c" * DIGEST_BYTES] and ledger.flights == [] and ledger.failed == {}
