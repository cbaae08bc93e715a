"""Reading import files: FHIR NDJSON (one resource a line, as Bulk Data writes it) and
Bundles (transaction, batch or collection, as Synthea writes them).

A file becomes a sequence of items, each a resource or the reason it cannot be one,
labelled with its line (NDJSON) or entry number (Bundle). The sequence is the same
every time the same bytes are read, which is what lets an import resume by counting.
Bundle entries are put in load order (the directory, then patients, then their
records) and ``urn:uuid:`` references are rewritten to the ids the entries carry.
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from carevault.fhir.elements import FHIR_ID, walk_references
from carevault.fhir.jsonio import MAX_DEPTH, FhirDecimal, MalformedJson, parse

#: Load order: what a record refers to (for its patient and its clinic) goes first.
_PHASES = {
    "Organization": 0,
    "Location": 1,
    "Practitioner": 1,
    "PractitionerRole": 2,
    "HealthcareService": 2,
    "Schedule": 3,
    "Slot": 4,
    "Patient": 5,
    "Encounter": 6,
    "Appointment": 6,
    "EpisodeOfCare": 6,
}
_OTHER_PHASE = 7
#: A number with a fraction or an exponent, as compact JSON holds it (after ``:``, ``[``
#: or ``,``): every float orjson writes has one. A string may look so too: that line
#: only costs the walk it would have cost anyway.
_FRACTIONAL = re.compile(rb"[:,\[]-?[0-9]+[.eE]")
_NAMESPACE = uuid.UUID("6f1c1d36-5b0e-4a53-9a4c-3f0f53d7f7a1")


def phase(resource_type: str) -> int:
    return _PHASES.get(resource_type, _OTHER_PHASE)


def file_phase(path: Path) -> int:
    """Where an NDJSON file named after its type (``Patient.ndjson``,
    ``Observation-2.ndjson``) goes in load order; other names last, as given."""
    stem = path.name.split(".", 1)[0].split("-", 1)[0]
    return phase(stem) if stem in _PHASES else _OTHER_PHASE


@dataclass(frozen=True)
class Item:
    """One line or entry: a resource ready to validate, or why it is refused."""

    line: int
    resource: dict[str, Any] | None
    refused: str | None = None
    #: The NDJSON line the resource was read from: what is sent to a checking process,
    #: which reads it again (bytes cost far less to send than the objects they make).
    raw: bytes | None = None


class SourceError(ValueError):
    """The file as a whole cannot be read (not JSON, not a Bundle, not NDJSON)."""


def digest(path: Path) -> str:
    hashed = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            hashed.update(block)
    return hashed.hexdigest()


def is_ndjson(path: Path) -> bool:
    return path.suffix.lower() in (".ndjson", ".jsonl")


def count_items(path: Path, seed: str) -> int:
    """How many items ``read_items`` gives, cheaply for NDJSON (counting lines)."""
    if not is_ndjson(path):
        return len(_bundle_items(path, seed))
    count = 0
    last = b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (0 if last == b"\n" else 1)


def read_items(
    path: Path, seed: str, skip: int = 0, *, exact_numbers: bool = True
) -> Iterator[Item]:
    """The file's items from the ``skip``-th on; ``seed`` (the file's digest) makes the
    ids given to resources that come without one the same on every reading.

    ``exact_numbers=False`` (a writer whose checking processes read each NDJSON line
    again, exactly): see ``parse_line``."""
    if is_ndjson(path):
        yield from _ndjson_items(path, seed, skip, exact_numbers)
    else:
        yield from _bundle_items(path, seed)[skip:]


def ndjson_body_items(body: bytes, seed: str, skip: int = 0) -> Iterator[Item]:
    """``read_items`` of NDJSON held in memory (an ``$import`` body, never on disk in
    the clear)."""
    yield from _ndjson_items(body, seed, skip, True)


def _ndjson_items(path: Path | bytes, seed: str, skip: int, exact_numbers: bool) -> Iterator[Item]:
    with path.open("rb") if isinstance(path, Path) else io.BytesIO(path) as handle:
        for number, raw in enumerate(handle, start=1):
            if number <= skip:
                continue
            text = raw.strip()
            if not text:
                yield Item(number, None, "empty line")
                continue
            try:
                resource = parse_line(text, exact_numbers=exact_numbers)
            except MalformedJson as error:
                yield Item(number, None, f"not JSON: {error}")
                continue
            if not isinstance(resource, dict):
                yield Item(number, None, "a line must hold one JSON object")
                continue
            if "id" not in resource:
                resource["id"] = str(uuid.uuid5(_NAMESPACE, f"{seed}:{number}"))
            elif isinstance(resource["id"], str) and not FHIR_ID.fullmatch(resource["id"]):
                # As a Bundle entry's: an id no request could name (or longer than the
                # store's column) is refused here, by line; other types validation names.
                yield Item(number, None, "the line's id is not a FHIR id (1-64 of A-Z a-z 0-9 - .)")
                continue
            yield Item(number, resource, raw=text)


def read_again(raw: bytes, resource_id: str | None) -> dict[str, Any] | None:
    """The resource of an NDJSON line as ``read_items`` gave it, where it was given
    ``resource_id`` if it had no id; None if the line no longer reads as one (it always
    does: the same bytes read the same)."""
    try:
        resource = parse_line(raw)
    except MalformedJson:
        return None
    if not isinstance(resource, dict):
        return None
    if "id" not in resource and resource_id is not None:
        resource["id"] = resource_id
    return resource


def parse_line(text: bytes, *, exact_numbers: bool = True) -> Any:
    """``jsonio.parse(text)``, the same values, sooner for a line written compactly as
    orjson writes JSON (as Bulk Data exports and ``carevault`` itself write NDJSON).

    orjson reads the line; if writing what it read gives back the line's bytes, nothing
    was lost on the way: no duplicate key (the last would have won), no number wider than
    64 bits, no ``-0``, no decimal whose text a double changes (``72.50``), no escape
    spelled otherwise. Each float is then the decimal whose text orjson writes for it,
    which is the line's own text. Any other line goes through ``jsonio.parse``, which
    refuses what it refuses with its reasons.

    ``exact_numbers=False``: such a line's floats are left as floats rather than turned
    into ``FhirDecimal`` (a walk of the whole record, a tenth of a bulk writer's work).
    Written again (``jsonio.dumps``) the record gives the same bytes, for orjson writes
    each of those floats as the line's own text. Only for a writer that looks at no
    number: its checking processes read the line again with exact numbers, and validate
    and index from that."""
    # Nesting is bounded as the strict parser bounds it (orjson allows deeper).
    if text.count(b"[") + text.count(b"{") <= MAX_DEPTH:
        try:
            fast = orjson.loads(text)
        except orjson.JSONDecodeError:
            fast = None
        if fast is not None and orjson.dumps(fast) == text:
            # A line in which no number has a fraction or an exponent holds no float:
            # nothing to turn into decimals, and no walk of the record to look for one.
            return _exact(fast) if exact_numbers and _FRACTIONAL.search(text) else fast
    return parse(text)


def _exact(value: Any) -> Any:
    """``value`` with each float replaced by the decimal of the text orjson writes for it."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list | float):
                value[key] = _exact(item)
        return value
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict | list | float):
                value[index] = _exact(item)
        return value
    if isinstance(value, float):
        return FhirDecimal(orjson.dumps(value).decode())
    return value


def _bundle_items(path: Path, seed: str) -> list[Item]:
    try:
        document = parse(path.read_bytes())
    except MalformedJson as error:
        raise SourceError(f"{path.name}: not JSON ({error})") from None
    if not isinstance(document, dict):
        raise SourceError(f"{path.name}: not a FHIR resource")
    if document.get("resourceType") != "Bundle":
        return [Item(1, document)]
    if document.get("type") not in ("transaction", "batch", "collection"):
        raise SourceError(f"{path.name}: only transaction, batch and collection Bundles load")
    entries = document.get("entry", [])
    if not isinstance(entries, list):
        raise SourceError(f"{path.name}: Bundle.entry must be an array")
    items: list[Item] = []
    targets: dict[str, str] = {}
    for number, entry in enumerate(entries, start=1):
        item = _entry_item(number, entry, seed)
        items.append(item)
        if item.resource is not None and isinstance(entry.get("fullUrl"), str):
            targets[entry["fullUrl"]] = f"{item.resource['resourceType']}/{item.resource['id']}"
    for item in items:
        if item.resource is not None:
            for holder in walk_references(item.resource):
                found = targets.get(holder["reference"])
                if found is not None:
                    holder["reference"] = found
    # Stable: within a phase, entries keep the Bundle's order.
    items.sort(key=lambda it: phase(it.resource["resourceType"]) if it.resource else -1)
    return items


def _entry_item(number: int, entry: Any, seed: str) -> Item:
    if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
        return Item(number, None, "the entry holds no resource")
    resource: dict[str, Any] = entry["resource"]
    request = entry.get("request")
    method = request.get("method") if isinstance(request, dict) else None
    if method not in (None, "POST", "PUT"):
        return Item(number, None, "only POST and PUT entries are loaded")
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        return Item(number, None, "resourceType is missing")
    resource_id = resource.get("id")
    if method == "PUT" and isinstance(request, dict) and isinstance(request.get("url"), str):
        parts = request["url"].split("?", 1)[0].strip("/").split("/")
        if len(parts) == 2 and parts[0] == resource_type:
            resource_id = parts[1]
    if not isinstance(resource_id, str):
        full = entry.get("fullUrl")
        if isinstance(full, str) and full.startswith("urn:uuid:"):
            resource_id = full.removeprefix("urn:uuid:")
        else:
            # The same entry of the same file gets the same id every time it is read.
            resource_id = str(uuid.uuid5(_NAMESPACE, f"{seed}:{number}"))
    if not FHIR_ID.fullmatch(resource_id):
        return Item(number, None, "the entry's id is not a FHIR id")
    return Item(number, {**resource, "id": resource_id})


def bundles_to_ndjson(bundles: list[Path], folder: Path) -> list[Path]:
    """Write the resources of ``bundles`` as one NDJSON file per type in ``folder`` (as
    a Bulk Data export lays them out), references resolved; entries that cannot load
    as they are (no resource, a GET) are left out. Returns the files, in load order."""
    from carevault.fhir.jsonio import dumps

    folder.mkdir(parents=True, exist_ok=True)
    handles: dict[str, Any] = {}
    try:
        for bundle in bundles:
            for item in _bundle_items(bundle, digest(bundle)):
                if item.resource is None:
                    continue
                name = item.resource["resourceType"]
                if name not in handles:
                    handles[name] = (folder / f"{name}.ndjson").open("wb")
                handles[name].write(dumps(item.resource) + b"\n")
    finally:
        for handle in handles.values():
            handle.close()
    return sorted((folder / f"{name}.ndjson" for name in handles), key=file_phase)
