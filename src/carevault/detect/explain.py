"""Which accesses a care relationship explains: one query per batch of entries.

An access is explained when the patient has a care relationship (appointment, visit,
order, care team entry, referral; see ``carevault.access.care``) with the person's
clinic or with the person as practitioner, valid at the moment of the access, or when
it was made under a break-the-glass grant (reviewed on its own queue).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from sqlalchemy import Engine, select

from carevault.access.tables import care_relationship, staff_account
from carevault.db import read_transaction
from carevault.detect.model import Access

CHUNK = 500
#: One care row: (clinic id, practitioner token, valid from, valid until).
CareRow = tuple[str | None, bytes | None, int, int]


class Explainer:
    def __init__(self, engine: Engine, practitioner_token: Callable[[str], bytes]) -> None:
        self.engine = engine
        self._token_of = practitioner_token
        #: principal → practitioner token (b"" when the account is no practitioner).
        self._tokens: dict[str, bytes] = {}

    def explain(self, accesses: Sequence[Access]) -> list[Access]:
        wanted = [a for a in accesses if a.released and a.purpose != "ETREAT"]
        if not wanted:
            return [
                replace(a, explained=a.purpose == "ETREAT") if a.released else a for a in accesses
            ]
        care = self._care({a.patient_pseudonym or "" for a in wanted})
        self._learn_tokens({a.principal or "" for a in wanted})
        explained: list[Access] = []
        for access in accesses:
            if not access.released:
                explained.append(access)
                continue
            if access.purpose == "ETREAT":
                explained.append(replace(access, explained=True))
                continue
            token = self._tokens.get(access.principal or "", b"")
            clinics = set(access.clinic_ids)
            rows = care.get(access.patient_pseudonym or "", [])
            hit = any(
                low <= access.at_us <= high
                and ((clinic is not None and clinic in clinics) or (token and held == token))
                for clinic, held, low, high in rows
            )
            explained.append(replace(access, explained=hit) if hit else access)
        return explained

    def _care(self, pseudonyms: set[str]) -> dict[str, list[CareRow]]:
        found: dict[str, list[CareRow]] = {}
        ordered = sorted(pseudonyms)
        with read_transaction(self.engine) as connection:
            for start in range(0, len(ordered), CHUNK):
                rows = connection.execute(
                    select(
                        care_relationship.c.patient_pseudonym,
                        care_relationship.c.clinic_id,
                        care_relationship.c.practitioner_token,
                        care_relationship.c.valid_from_us,
                        care_relationship.c.valid_until_us,
                    ).where(
                        care_relationship.c.patient_pseudonym.in_(ordered[start : start + CHUNK])
                    )
                ).all()
                for pseudonym, clinic, token, low, high in rows:
                    found.setdefault(pseudonym, []).append(
                        (clinic, bytes(token) if token is not None else None, int(low), int(high))
                    )
        return found

    def _learn_tokens(self, principals: set[str]) -> None:
        missing = sorted(
            p.removeprefix("staff:")
            for p in principals
            if p.startswith("staff:") and p not in self._tokens
        )
        if not missing:
            return
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(staff_account.c.username, staff_account.c.practitioner_id).where(
                    staff_account.c.username.in_(missing)
                )
            ).all()
        known: dict[str, str | None] = {str(u): p for u, p in rows}
        for username in missing:
            practitioner = known.get(username)
            self._tokens[f"staff:{username}"] = (
                self._token_of(practitioner) if practitioner else b""
            )
