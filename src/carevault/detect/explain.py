"""Which accesses a care relationship explains: one query per batch of entries.

An access is explained when the patient has a care relationship (appointment, visit,
order, care team entry, referral; see ``carevault.access.care``) with the person's
clinic or with the person as practitioner, valid at the moment of the access, or when
it was made under a break-the-glass grant (reviewed on its own queue): an entry whose
purpose is ETREAT (emergency treatment) is explained only while the account holds an
active grant for that patient (``access.breakglass``: granted, not expired, and, for an
emergency grant while data is offline, approved); the purpose alone is only a claim.

A relationship the person made alone (``granted_by``: every version of the appointment
or visit that opened it is theirs; ``carevault.domain.care.made_by``) explains none of
their own accesses, whichever of their logins (accounts naming one practitioner) made
it or reads: an insider who books a celebrity and reads the chart is judged as
if there were no booking, until someone else's write corroborates it (the desk checks
the patient in, a colleague books or reschedules) or another relationship covers it.

Care that only a client app's writes, and at most the person's own, stand behind (the
portal booked the patient; the kiosk checked in the person's own booking;
``carevault.domain.makers``) explains their access to every detector but ``vip``, and
the entry says so (``Access.client_care``): a VIP's record asks for a person's word, and
a client's secret is no person (adversary round 82).

Care another principal made alone does explain the person's access, and the entry says
so (``Access.made_alone``, the records of it): for an account watched after a step-up,
care some other account made alone after the watch began is no explanation the watch
takes on trust (``signals``; ``first_written`` dates it).

An entry of a bulk export (``fhir:resource:export``) is explained by the export's
approval: the job it names was approved by privacy officers (as many as it needed) and
was asked for by the same principal. Such a job is watched by its own ``bulk-export``
alert; what the same client does outside it is judged as anything else.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Engine, select

from carevault.access.care import SEALED_COLUMNS as CARE_SEALED
from carevault.access.tables import break_glass, care_relationship, staff_account
from carevault.db import read_transaction
from carevault.detect.model import DAY_US, EXPORT_TAG, Access
from carevault.domain.care import CareWindow
from carevault.domain.makers import broad, client_only
from carevault.export.tables import export_job
from carevault.vault.tables import resource_head, resource_version

CHUNK = 500
#: How close to a visit care at the clinic is close care (``Access.near_care``, what a
#: VIP's record asks): within a day of it.
NEAR_US = DAY_US
#: One care row: (clinic id, practitioner token, valid from, valid until, token of who
#: alone made it or None, the whole window of its record it is a piece of: from,
#: until, and the record's vault row).
CareRow = tuple[str | None, bytes | None, int, int, bytes | None, int, int, int]
#: One break-the-glass grant: (active from, until) in µs.
GlassRow = tuple[int, int]


class Explainer:
    def __init__(
        self,
        engine: Engine,
        practitioner_token: Callable[[str], bytes],
        window: CareWindow,
        grant_genuine: Callable[[Any], bool],
        care_genuine: Callable[[Mapping[Any, Any]], bool],
    ) -> None:
        """``grant_genuine``, ``care_genuine``: whether a ``break_glass`` row, or a
        ``care_relationship`` row (its sealed columns and seal, by name), is as CareVault
        wrote it (``BreakGlass.genuine``, ``CareRelationships.genuine``): a grant or a
        care relationship inserted in the database explains nothing (adversary round 70:
        a care row inserted after the fact took a snooping read for care)."""
        self.engine = engine
        self._grant_genuine = grant_genuine
        self._care_genuine = care_genuine
        self._token_of = practitioner_token
        #: How long care opens a record before and after its visit (``care_days_*``): a
        #: relationship's visit is its window less these, for ``near_care``.
        self.window = window
        #: principal → practitioner token (b"" when the account is no practitioner).
        self._tokens: dict[str, bytes] = {}
        #: principal → its ``granted_by`` token (relationships it made alone).
        self._makers: dict[str, bytes] = {}
        #: principal → the practitioner its account names ("" when none): its person.
        self._practitioners: dict[str, str] = {}
        #: principal → staff account id ("" when there is none): grants are by account.
        self._accounts: dict[str, str] = {}
        #: Export jobs known to have been approved, with their principal (an approval,
        #: once given, is never taken back: a stopped job's entries stay explained).
        self._approved: dict[str, str] = {}

    def explain(self, accesses: Sequence[Access]) -> list[Access]:
        exported = [a for a in accesses if a.released and a.tag == EXPORT_TAG]
        if exported:
            self._learn_approvals({str(a.detail.get("job", "")) for a in exported})
            accesses = [
                replace(a, explained=True)
                if a.released and a.tag == EXPORT_TAG and self._approved_export(a)
                else a
                for a in accesses
            ]
        wanted = [a for a in accesses if a.released and not a.explained]
        if not wanted:
            return list(accesses)
        self._learn_tokens({a.principal or "" for a in wanted})
        glass = self._glass([a for a in wanted if a.purpose == "ETREAT"])
        care = self._care({a.patient_pseudonym or "" for a in wanted})
        people = self._people({a.principal or "" for a in wanted})
        explained: list[Access] = []
        for access in accesses:
            if not access.released or access.explained:
                explained.append(access)
                continue
            if access.purpose == "ETREAT" and self._under_glass(access, glass):
                # A grant names the person and is reviewed on its own queue: close care.
                explained.append(replace(access, explained=True, near_care=True, under_grant=True))
                continue
            token = self._tokens.get(access.principal or "", b"")
            clinics = set(access.clinic_ids)
            rows = care.get(access.patient_pseudonym or "", [])
            mine = people.get(access.principal or "") or {self._maker(access.principal or "")}
            hit = near = established = vouched = False
            alone: set[int] = set()
            for clinic, held, low, high, marked, whole_low, whole_high, source in rows:
                named = bool(token) and held == token
                maker = broad(marked)
                if not low <= access.at_us <= high or maker in mine:
                    continue
                if not named and (clinic is None or clinic not in clinics):
                    continue
                hit = True
                near = near or named or self._near_visit(access.at_us, whole_low, whole_high)
                vouched = vouched or not client_only(marked, mine)
                if maker is None:
                    established = True
                else:
                    alone.add(source)
                if near and established and vouched:
                    break
            explained.append(
                replace(
                    access,
                    explained=True,
                    near_care=near,
                    made_alone=() if established else tuple(sorted(alone)),
                    client_care=not vouched,
                )
                if hit
                else access
            )
        return explained

    def first_written(self, rows: set[int]) -> dict[int, int]:
        """When each record of care (by vault row) was first written, in µs: the first
        version kept since it was last deleted (a record written again at a deleted
        record's id is new care, dated by its own first version, not the id's). A booking
        moved later keeps its first date: moving many is what ``staff-changes`` counts."""
        versions: dict[int, list[tuple[int, int, bool]]] = {}
        ordered = sorted(rows)
        with read_transaction(self.engine) as connection:
            for start in range(0, len(ordered), CHUNK):
                for row, version, at_us, deleted in connection.execute(
                    select(
                        resource_head.c.row_id,
                        resource_version.c.version_id,
                        resource_version.c.last_updated_us,
                        resource_version.c.deleted,
                    )
                    .join(
                        resource_version,
                        (resource_version.c.resource_type == resource_head.c.resource_type)
                        & (resource_version.c.resource_id == resource_head.c.resource_id),
                    )
                    .where(resource_head.c.row_id.in_(ordered[start : start + CHUNK]))
                ).all():
                    versions.setdefault(int(row), []).append(
                        (int(version), int(at_us), bool(deleted))
                    )
        found: dict[int, int] = {}
        for row, held in versions.items():
            held.sort()
            gone = max((version for version, _, deleted in held if deleted), default=0)
            since = [at_us for version, at_us, _ in held if version > gone]
            if since:
                found[row] = since[0]
        return found

    def _near_visit(self, at_us: int, low: int, high: int) -> bool:
        """Within a day of the visit or appointment whose window is ``low``..``high``."""
        starts, ends = low + self.window.before_us, high - self.window.after_us
        return starts - NEAR_US <= at_us <= ends + NEAR_US

    def _glass(self, emergency: Sequence[Access]) -> dict[tuple[str, str], list[GlassRow]]:
        """The break-the-glass grants of the accounts and patients of ``emergency``
        entries (purpose ETREAT), by (account id, pseudonym)."""
        accounts = {self._accounts.get(a.principal or "") for a in emergency} - {None, ""}
        pseudonyms = {a.patient_pseudonym or "" for a in emergency} - {""}
        found: dict[tuple[str, str], list[GlassRow]] = {}
        if not accounts or not pseudonyms:
            return found
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(break_glass).where(
                    break_glass.c.account_id.in_(sorted(a for a in accounts if a)),
                    break_glass.c.patient_pseudonym.in_(sorted(pseudonyms)),
                )
            ).all()
        for row in rows:
            if not self._grant_genuine(row):
                continue
            # An emergency grant (patient data offline) is active only once approved.
            since = int(row.granted_us)
            if row.emergency:
                if row.approved_us is None:
                    continue
                since = max(since, int(row.approved_us))
            found.setdefault((str(row.account_id), str(row.patient_pseudonym)), []).append(
                (since, int(row.expires_us))
            )
        return found

    def _under_glass(self, access: Access, glass: dict[tuple[str, str], list[GlassRow]]) -> bool:
        """An entry under purpose ETREAT is explained only while the account holds an
        active grant for that patient (the purpose alone is only a claim)."""
        account = self._accounts.get(access.principal or "")
        if not account:
            return False
        spans = glass.get((account, access.patient_pseudonym or ""), [])
        return any(low <= access.at_us < high for low, high in spans)

    def _care(self, pseudonyms: set[str]) -> dict[str, list[CareRow]]:
        found: dict[str, list[CareRow]] = {}
        ordered = sorted(pseudonyms)
        with read_transaction(self.engine) as connection:
            for start in range(0, len(ordered), CHUNK):
                sealed = connection.execute(
                    select(
                        *(care_relationship.c[name] for name in CARE_SEALED),
                        care_relationship.c.seal,
                    ).where(
                        care_relationship.c.patient_pseudonym.in_(ordered[start : start + CHUNK])
                    )
                ).all()
                rows = [
                    (
                        row.patient_pseudonym,
                        row.clinic_id,
                        row.practitioner_token,
                        row.valid_from_us,
                        row.valid_until_us,
                        row.granted_by,
                        row.source_row_id,
                    )
                    for row in sealed
                    if self._care_genuine(row._mapping)
                ]
                # A window a continuation split (``domain.care.attribute``: the part
                # someone else's care covered, the rest the writer's) is one visit's
                # window: its pieces share their record, clinic and practitioner.
                whole: dict[tuple[object, ...], tuple[int, int]] = {}
                for pseudonym, clinic, token, low, high, _, source in rows:
                    key = (pseudonym, source, clinic, None if token is None else bytes(token))
                    known = whole.get(key)
                    whole[key] = (
                        (int(low), int(high))
                        if known is None
                        else (min(known[0], int(low)), max(known[1], int(high)))
                    )
                for pseudonym, clinic, token, low, high, maker, source in rows:
                    held = bytes(token) if token is not None else None
                    span = whole[(pseudonym, source, clinic, held)]
                    found.setdefault(pseudonym, []).append(
                        (
                            clinic,
                            held,
                            int(low),
                            int(high),
                            bytes(maker) if maker is not None else None,
                            *span,
                            int(source),
                        )
                    )
        return found

    def _maker(self, principal: str) -> bytes:
        """The ``granted_by`` token of ``principal`` (as ``CareRelationships.maker``)."""
        found = self._makers.get(principal)
        if found is None:
            found = self._token_of(principal) if principal else b""
            if len(self._makers) > 10_000:
                self._makers.clear()
            self._makers[principal] = found
        return found

    def _people(self, principals: set[str]) -> dict[str, frozenset[bytes]]:
        """The ``granted_by`` tokens of each staff principal's person: every login naming
        the practitioner its account names (``StaffAccounts.same_person``). Care a person
        made alone with one login explains none of their accesses through another. Asked
        for each batch, not kept: a login given to the person later counts at once."""
        named = {
            principal: self._practitioners[principal]
            for principal in principals
            if self._practitioners.get(principal)
        }
        if not named:
            return {}
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(staff_account.c.username, staff_account.c.practitioner_id).where(
                    staff_account.c.practitioner_id.in_(sorted(set(named.values())))
                )
            ).all()
        logins: dict[str, set[bytes]] = {}
        for username, practitioner in rows:
            logins.setdefault(str(practitioner), set()).add(self._maker(f"staff:{username}"))
        return {
            principal: frozenset(logins.get(practitioner, set()) | {self._maker(principal)})
            for principal, practitioner in named.items()
        }

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
                select(
                    staff_account.c.username,
                    staff_account.c.practitioner_id,
                    staff_account.c.account_id,
                ).where(staff_account.c.username.in_(missing))
            ).all()
        known: dict[str, tuple[str | None, str]] = {str(u): (p, str(a)) for u, p, a in rows}
        for username in missing:
            practitioner, account = known.get(username, (None, ""))
            self._tokens[f"staff:{username}"] = (
                self._token_of(practitioner) if practitioner else b""
            )
            self._accounts[f"staff:{username}"] = account
            self._practitioners[f"staff:{username}"] = practitioner or ""

    def _approved_export(self, access: Access) -> bool:
        job = str(access.detail.get("job", ""))
        return bool(job) and self._approved.get(job) == access.principal

    def _learn_approvals(self, jobs: set[str]) -> None:
        missing = sorted(job for job in jobs if job and job not in self._approved)
        if not missing:
            return
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(
                    export_job.c.job_id,
                    export_job.c.principal,
                    export_job.c.approvals,
                    export_job.c.approvals_needed,
                ).where(export_job.c.job_id.in_(missing))
            ).all()
        for job_id, principal, approvals, needed in rows:
            officers = {item.get("officer") for item in json.loads(approvals or "[]")}
            if len(officers) >= int(needed) >= 1:
                self._approved[str(job_id)] = str(principal)
