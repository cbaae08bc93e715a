"""A patient as the console shows them: built only from what the gate returned for the
officer (a resource already cut to the categories the role may read), so nothing
withheld can appear, whatever this code looks for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MRN_SYSTEM = "http://carevault.hk/sid/mrn"


@dataclass(frozen=True)
class PatientCard:
    """Name, MRN and contact, as far as the gate returned them."""

    patient_id: str
    names: tuple[str, ...]
    mrn: str | None
    phones: tuple[str, ...]
    emails: tuple[str, ...]
    address: tuple[str, ...]

    @property
    def name(self) -> str | None:
        return " / ".join(self.names) or None


def _names(resource: dict[str, Any]) -> tuple[str, ...]:
    """Every distinct written form of the name (an English and a Chinese one, often)."""
    found: list[str] = []
    for name in resource.get("name") or []:
        if not isinstance(name, dict):
            continue
        parts = [str(name.get("family") or ""), *[str(g) for g in name.get("given") or []]]
        text = str(name.get("text") or " ".join(part for part in parts if part))
        if text and text not in found:
            found.append(text)
    return tuple(found)


def _address(resource: dict[str, Any]) -> tuple[str, ...]:
    for address in resource.get("address") or []:
        if not isinstance(address, dict):
            continue
        if address.get("text"):
            return (str(address["text"]),)
        lines = [str(line) for line in address.get("line") or []]
        lines += [str(address[key]) for key in ("district", "city") if address.get(key)]
        if lines:
            return tuple(lines)
    return ()


def patient_card(patient_id: str, resource: dict[str, Any]) -> PatientCard:
    identifiers = [item for item in resource.get("identifier") or [] if isinstance(item, dict)]
    mrn = next(
        (str(item.get("value")) for item in identifiers if item.get("system") == MRN_SYSTEM), None
    )
    telecom = [item for item in resource.get("telecom") or [] if isinstance(item, dict)]
    return PatientCard(
        patient_id=patient_id,
        names=_names(resource),
        mrn=mrn,
        phones=tuple(
            str(t["value"]) for t in telecom if t.get("system") == "phone" and "value" in t
        ),
        emails=tuple(
            str(t["value"]) for t in telecom if t.get("system") == "email" and "value" in t
        ),
        address=_address(resource),
    )
