"""JSON Patch (RFC 6902) and JSON Merge Patch (RFC 7386) applied to parsed resources."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from carevault.fhir import jsonio
from carevault.fhir.patch import (
    MAX_OPERATIONS,
    PatchFailed,
    apply_json_patch,
    apply_merge_patch,
    json_equal,
    keep_protected,
    parse_pointer,
)


def resource() -> dict[str, Any]:
    parsed: dict[str, Any] = jsonio.parse(
        b'{"resourceType":"Observation","id":"obs-1","meta":{"versionId":"2"},'
        b'"status":"final","code":{"text":"weight"},'
        b'"valueQuantity":{"value":72.50,"unit":"kg"},'
        b'"note":[{"text":"a"},{"text":"b"}],"a/b":{"m~n":1}}'
    )
    return parsed


def failure(call: Any) -> PatchFailed:
    with pytest.raises(PatchFailed) as raised:
        call()
    return raised.value


def test_each_operation_does_what_rfc_6902_says() -> None:
    before = resource()
    after = apply_json_patch(
        before,
        [
            {"op": "test", "path": "/status", "value": "final"},
            {"op": "replace", "path": "/status", "value": "amended"},
            {"op": "add", "path": "/note/1", "value": {"text": "inserted"}},
            {"op": "add", "path": "/note/-", "value": {"text": "last"}},
            {"op": "remove", "path": "/note/0"},
            {"op": "copy", "from": "/code", "path": "/method"},
            {"op": "move", "from": "/method/text", "path": "/comment"},
            {"op": "add", "path": "/a~1b/m~0n", "value": 2},
        ],
    )
    assert after["status"] == "amended"
    assert after["note"] == [{"text": "inserted"}, {"text": "b"}, {"text": "last"}]
    assert after["method"] == {}
    assert after["comment"] == "weight"
    assert after["a/b"] == {"m~n": 2}
    assert before == resource()  # the input is never changed


def test_a_decimal_keeps_its_text_through_a_patch() -> None:
    patch = jsonio.parse(
        b'[{"op":"test","path":"/valueQuantity/value","value":72.5},'
        b'{"op":"add","path":"/valueQuantity/comparator","value":"<"},'
        b'{"op":"add","path":"/referenceRange","value":[{"low":{"value":12345678901234567890.123}}]}]'
    )
    after = apply_json_patch(resource(), patch)
    written = jsonio.dumps(after)
    assert b'"value":72.50' in written
    assert b'"value":12345678901234567890.123' in written


@pytest.mark.parametrize(
    ("patch", "status"),
    [
        ({"op": "add"}, 400),
        ([{"op": "frobnicate", "path": "/status"}], 400),
        ([{"path": "/status", "value": 1}], 400),
        ([{"op": "add", "path": "status", "value": 1}], 400),
        ([{"op": "add", "path": "/status"}], 400),
        ([{"op": "copy", "path": "/x"}], 400),
        ([{"op": "add", "path": "/a~2", "value": 1}], 400),
        (["replace"], 400),
        ([{"op": "move", "from": "/code", "path": "/code/coding"}], 400),
        ([{"op": "test", "path": "/status", "value": "preliminary"}], 409),
        ([{"op": "test", "path": "/nothing", "value": 1}], 409),
        ([{"op": "remove", "path": "/nothing"}], 409),
        ([{"op": "replace", "path": "/note/2", "value": {"text": "c"}}], 409),
        ([{"op": "add", "path": "/note/3", "value": {"text": "c"}}], 409),
        ([{"op": "add", "path": "/no/such", "value": 1}], 409),
        ([{"op": "add", "path": "/note/01", "value": {"text": "c"}}], 409),
        ([{"op": "copy", "from": "/nothing", "path": "/x"}], 409),
        ([{"op": "replace", "path": "/id", "value": "other"}], 422),
        ([{"op": "remove", "path": "/meta"}], 422),
        ([{"op": "add", "path": "/meta/security", "value": []}], 422),
        ([{"op": "replace", "path": "", "value": {}}], 422),
        ([{"op": "move", "from": "/id", "path": "/comment"}], 422),
        ([{"op": "replace", "path": "/resourceType", "value": "Patient"}], 422),
    ],
)
def test_a_bad_patch_is_refused_with_its_status_and_changes_nothing(
    patch: Any, status: int
) -> None:
    before = resource()
    error = failure(lambda: apply_json_patch(before, patch))
    assert error.status == status
    assert before == resource()


def test_a_failed_test_after_changes_leaves_the_document_as_it_was() -> None:
    before = resource()
    error = failure(
        lambda: apply_json_patch(
            before,
            [
                {"op": "replace", "path": "/status", "value": "amended"},
                {"op": "test", "path": "/status", "value": "final"},
            ],
        )
    )
    assert error.status == 409
    assert before["status"] == "final"


def test_messages_name_paths_never_values() -> None:
    error = failure(
        lambda: apply_json_patch(
            resource(), [{"op": "test", "path": "/status", "value": "Chan Tai Man A123456(3)"}]
        )
    )
    assert "Chan" not in str(error) and "A123456" not in str(error)
    error = failure(lambda: apply_json_patch(resource(), [{"op": "remove", "path": "/Chan Tai"}]))
    assert "Chan Tai" not in str(error)


def test_a_patch_is_bounded_in_length() -> None:
    many = [{"op": "test", "path": "/status", "value": "final"}] * (MAX_OPERATIONS + 1)
    error = failure(lambda: apply_json_patch(resource(), many))
    assert error.status == 400
    assert error.issues[0].code == "too-costly"


def test_values_added_are_copies() -> None:
    value = {"text": "shared"}
    after = apply_json_patch(resource(), [{"op": "add", "path": "/note/0", "value": value}])
    after["note"][0]["text"] = "changed"
    assert value == {"text": "shared"}


def test_test_compares_json_types_strictly() -> None:
    assert json_equal(jsonio.parse(b"72.50"), 72.5)
    assert json_equal({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})
    assert not json_equal(True, 1)
    assert not json_equal(1, "1")
    assert not json_equal([1, 2], [2, 1])
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})


def test_pointers_unescape_tilde_and_slash() -> None:
    assert parse_pointer("") == []
    assert parse_pointer("/a~1b/m~0n/0") == ["a/b", "m~n", "0"]
    with pytest.raises(ValueError, match="starts with"):
        parse_pointer("a")


def test_merge_patch_merges_objects_removes_nulls_and_replaces_arrays() -> None:
    before = resource()
    after = apply_merge_patch(
        before,
        {"status": "amended", "valueQuantity": {"unit": None}, "note": [{"text": "only"}]},
    )
    assert after["status"] == "amended"
    assert after["valueQuantity"] == {"value": before["valueQuantity"]["value"]}
    assert after["note"] == [{"text": "only"}]
    assert before == resource()
    assert failure(lambda: apply_merge_patch(before, [1])).status == 400


def test_keep_protected_refuses_a_changed_id_or_meta() -> None:
    before = resource()
    same = copy.deepcopy(before)
    keep_protected(before, same)
    for name, value in (("id", "other"), ("meta", {"versionId": "9"})):
        changed = {**before, name: value}
        assert failure(lambda changed=changed: keep_protected(before, changed)).status == 422
    without = {key: value for key, value in before.items() if key != "meta"}
    assert failure(lambda: keep_protected(before, without)).status == 422


def test_copies_that_would_grow_past_the_limit_are_stopped_early() -> None:
    doubling = [{"op": "copy", "from": "/note", "path": "/note/-"}] * 60
    error = failure(lambda: apply_json_patch(resource(), doubling, max_bytes=64 * 1024))
    assert error.status == 413
    # Without the bound the same patch would build 2**60 notes; with it, a few copies.
    assert len(apply_json_patch(resource(), doubling[:3], max_bytes=64 * 1024)["note"]) == 5
