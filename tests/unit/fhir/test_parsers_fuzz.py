"""Hypothesis against the parsers that take outside input: whatever arrives, each either
answers or refuses with its own error, never anything else, and what it accepts it
accepts consistently. (bench/fuzz_api.py runs the same with many more examples.)"""

from __future__ import annotations

import os
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from carevault.domain import hkid
from carevault.fhir import dates
from carevault.fhir.query import SearchError, parse_query
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.ledger import verifier

HK = ZoneInfo("Asia/Hong_Kong")
EXAMPLES = int(os.environ.get("CAREVAULT_FUZZ_EXAMPLES", "0")) * 25 or 80
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None)

#: Text as it arrives: any code point, with the shapes the parsers look for mixed in.
HKID_LIKE = st.from_regex(r"\A\s*[A-Za-zＡ-Ｚ]{0,3}\s*[0-9０-９]{5,7}\s*[(（]?[0-9Aa]?[)）]?\s*\Z")
DATE_LIKE = st.from_regex(
    r"\A(eq|ne|lt|gt|le|ge|sa|eb)?-?[0-9]{1,5}(-[0-9]{1,2}(-[0-9]{1,2}"
    r"(T[0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,12})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?\Z"
)
ANY_TEXT = st.text(max_size=60)


@FUZZ
@given(st.one_of(HKID_LIKE, ANY_TEXT))
def test_the_hkid_normaliser_answers_any_text_and_is_idempotent(text: str) -> None:
    normal = hkid.normalise(text)
    if normal is None:
        assert not hkid.is_valid(text)
        return
    assert normal.isascii() and normal.isalnum() and normal == normal.upper()
    assert hkid.normalise(normal) == normal
    assert hkid.is_valid(normal) == hkid.is_valid(text)


@FUZZ
@given(st.one_of(DATE_LIKE, ANY_TEXT))
def test_date_parsing_answers_a_range_or_a_date_error(text: str) -> None:
    try:
        prefix, rest = dates.split_prefix(text)
        found = dates.parse(rest, HK)
    except dates.DateFormatError:
        return
    assert isinstance(prefix, dates.Prefix)
    if found.low is not None and found.high is not None:
        assert found.low < found.high
    dates.tokens(found, HK)  # the blind-index tokens of any accepted range are computable


SEARCH_NAMES = st.sampled_from(
    ["family", "name", "birthdate", "identifier", "_count", "_offset", "_sort", "date",
     "patient", "subject", "code", "_id", "_lastUpdated", "gender", "telecom", "_include"]
)  # fmt: skip
SEARCH_VALUES = st.one_of(DATE_LIKE, HKID_LIKE, ANY_TEXT, st.just(""), st.just(",,|"))


@FUZZ
@given(
    st.sampled_from(sorted(RESOURCE_TYPES)),
    st.lists(
        st.tuples(st.one_of(SEARCH_NAMES, ANY_TEXT).map(lambda n: n + ""), SEARCH_VALUES),
        max_size=6,
    ),
    st.booleans(),
)
def test_search_parameters_parse_or_are_refused_with_a_search_error(
    type_name: str, params: list[tuple[str, str]], strict: bool
) -> None:
    try:
        query = parse_query(
            RESOURCE_TYPES[type_name],
            params,
            strict=strict,
            zone=HK,
            default_count=20,
            max_count=100,
        )
    except (SearchError, dates.DateFormatError):
        return
    assert 0 <= query.count <= 100


@FUZZ
@given(st.one_of(ANY_TEXT, st.binary(max_size=300).map(lambda b: b.decode("latin-1"))))
def test_the_standalone_verifier_refuses_any_malformed_note(text: str) -> None:
    try:
        verifier.parse_note(text)
    except verifier.VerificationError:
        return


@FUZZ
@given(st.lists(st.binary(min_size=0, max_size=40), max_size=20), st.integers(0, 300))
def test_the_standalone_verifier_refuses_any_malformed_proof(proof: list[bytes], size: int) -> None:
    root = verifier.root_of([verifier.leaf_hash(b"entry %d" % n) for n in range(max(size, 1))])
    try:
        verifier.verify_consistency(max(size // 2, 1), max(size, 1), proof, root, root)
    except verifier.VerificationError:
        return
