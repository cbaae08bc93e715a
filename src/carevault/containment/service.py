"""Containment actions: each needs a privacy officer with a fresh TOTP code, each is
recorded in the audit ledger and followed by a signed checkpoint, refusals included."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from carevault.access.accounts import (
    Account,
    NotAnOfficer,
    SignInFailed,
    StaffAccounts,
    officer_refusal,
    other_logins,
)
from carevault.access.admin import Administration
from carevault.access.breakglass import BreakGlass, Grant
from carevault.containment.state import (
    TARGETED,
    Containment,
    ContainmentStore,
    Mode,
    parse_network,
    release_binding,
)
from carevault.domain.roles import Role
from carevault.keys.service import KeyService
from carevault.keys.words import SealedWords, entry_words
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.service import Ledger
from carevault.ledger.trail import AuditTrail, submit_unwaited

#: The key an erasure's reason is sealed under (the officer's words: they may name the
#: patient erased, and the ledger is in the clear and kept for good; adversary round 67).
ERASURE_KEY_ID = "erasure-reasons"
#: What an erasure's ledger entry says in place of the officer's words.
ERASURE_REASON_SEALED = (
    "erasure request: the officer's words are sealed apart "
    "(carevault erasure-reason shows them, recorded)"
)
#: Who records a mode kept on against its altered row.
STATE_PRINCIPAL = "system:containment"
#: The longest reason an erasure takes (sealed into its ledger entry).
MAX_ERASURE_REASON = 500
#: What a containment's ledger entries say in place of the officer's words, which are
#: sealed in the entry's detail (``reason_sealed``) and, for a start, with the measure:
#: "suspend alice, she read Mrs Chan's chart" names a patient (stop 55).
STARTED_REASON = "containment started (the reason sealed in the detail)"
RELEASED_REASON = "containment released (the reason sealed in the detail)"


@dataclass(frozen=True)
class Erasure:
    """An erasure as its ledger entry records it, with the officer's words unsealed."""

    position: int
    at_us: int
    principal: str
    reason: str


def _erasure_words(keys: KeyService) -> SealedWords:
    """An erasure's words, sealed bound to the patient's pseudonym and the entry's time."""
    return SealedWords(
        keys, ERASURE_KEY_ID, "system:containment", "erasure-reason", "carevault-erasure"
    )


def containment_altered(
    trail: AuditTrail, now_us: Callable[[], int]
) -> Callable[[Containment, str], None]:
    """What ``ContainmentStore.altered`` is told, recorded: a ``containment:state:altered``
    entry (submitted, not waited for: the state is read on a request's way), which the
    detectors raise as a critical alert (``detect.tamper``). Never the mode's reason:
    an officer's words."""

    def record(item: Containment, why: str) -> None:
        submit_unwaited(
            trail,
            [
                AuditEvent(
                    tag=Tag.CONTAIN_ALTERED,
                    outcome=Outcome.FAILED,
                    at_us=now_us(),
                    principal=STATE_PRINCIPAL,
                    reason=f"containment #{item.containment_id} ({item.mode.value}) was "
                    f"{why} in the database: kept on",
                    detail={
                        "containment": item.containment_id,
                        "mode": item.mode.value,
                        "why": why,
                    },
                )
            ],
            "an altered containment",
        )

    return record


class ContainmentRefused(Exception):
    """Not a privacy officer, or no fresh TOTP code: refused, and recorded."""


@dataclass(frozen=True)
class Officer:
    """Who throws the switch, and from where."""

    username: str
    totp: str
    source_address: str | None = None


#: Whether an incident not closed that a containment action contains names a principal
#: (``staff:<username>``) as compromised: the incidents module's answer, wired by the
#: composition root (that module sits above this one).
NamedBy = Callable[[Containment, str], bool]
#: The incidents not closed whose scope, computed now, holds a patient (by pseudonym),
#: on behalf of a principal: wired by the composition root, as ``NamedBy``.
HeldBy = Callable[[str, str], list[int]]
#: The group's id of the clinic a typed id names, or None (the incidents module's
#: registry, wired by the composition root).
ClinicOf = Callable[[str], str | None]


class ContainmentService:
    def __init__(
        self,
        store: ContainmentStore,
        accounts: StaffAccounts,
        admin: Administration,
        break_glass: BreakGlass,
        ledger: Ledger,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.admin = admin
        self.break_glass = break_glass
        self.ledger = ledger
        self.named_by: NamedBy | None = None
        self.held_by: HeldBy | None = None
        self.clinic_of: ClinicOf | None = None

    def _record(
        self,
        tag: Tag,
        outcome: Outcome,
        officer: Officer,
        reason: str,
        account: Account | None = None,
        **detail: object,
    ) -> None:
        self.ledger.writer.record(
            [
                AuditEvent(
                    tag=tag,
                    outcome=outcome,
                    at_us=self.store.now_us(),
                    principal=f"staff:{officer.username}",
                    role=str(account.role) if account else None,
                    source_address=officer.source_address,
                    reason=reason,
                    detail=dict(detail),
                )
            ]
        )

    def _authorize(self, officer: Officer, action: str) -> Account:
        try:
            return self.accounts.confirm_officer(
                officer.username, officer.totp, officer.source_address
            )
        except SignInFailed as failure:
            account = failure.account if isinstance(failure, NotAnOfficer) else None
            self._record(
                Tag.CONTAIN_REFUSED, Outcome.DENIED, officer, f"{action}: {failure.reason}", account
            )
            raise ContainmentRefused(officer_refusal(failure)) from None

    def start(self, officer: Officer, mode: Mode, target: str | None, reason: str) -> Containment:
        if (mode in TARGETED) != bool(target):
            raise ValueError(
                f"{mode} needs a target" if mode in TARGETED else f"{mode} takes no target"
            )
        if not reason.strip():
            raise ValueError("say why (the reason is recorded)")
        if mode is Mode.BLOCK_ADDRESS:
            target = str(parse_network(target or ""))
        if mode is Mode.CLINIC_LOCK and self.clinic_of is not None:
            # The gate compares clinic ids exactly: a lock typed ``CLINIC-TM`` (or naming
            # no clinic) locked nothing while every page showed it on (adversary round 58).
            clinic = self.clinic_of(target or "")
            if clinic is None:
                raise ValueError(f"no clinic {(target or '')[:64]!r} in the group")
            target = clinic
        account = self._authorize(officer, f"start {mode}")
        by = f"staff:{account.username}"
        if mode is Mode.ACCOUNT_SUSPENDED:
            suspended, _ = self.admin.suspend(by, target or "")
            # Kept by the account's own name (as typed, ``DOCTOR1`` matched no page's
            # look-up of the suspension: adversary round 58).
            target = suspended.username
        elif mode is Mode.CLIENT_REVOKED:
            self.admin.revoke_client(by, target or "")
        started = self._started(officer, account, mode, target, reason)
        if mode is Mode.ACCOUNT_SUSPENDED:
            self._suspend_person(officer, account, target or "", reason)
        self.ledger.checkpoints.make(f"containment {started.containment_id}: {mode}")
        return started

    def _suspend_person(
        self, officer: Officer, account: Account, username: str, reason: str
    ) -> None:
        """Suspend the other logins of ``username``'s person (accounts naming the same
        practitioner), each its own containment, as the detectors' suspension does since
        round 57 (adversary round 58: an officer suspended Dr Tam's physician login and
        Dr Tam read on with a nurse login). A privacy officer's login, and the acting
        officer's own, are left as they are: another officer decides on them."""
        others = other_logins(username, self.accounts.all())
        if not others:
            return
        active = {
            item.target
            for item in self.store.refresh().active
            if item.mode is Mode.ACCOUNT_SUSPENDED
        }
        by = f"staff:{account.username}"
        for other in others:
            if (
                other.username in active
                or other.role is Role.PRIVACY_OFFICER
                or other.account_id == account.account_id
            ):
                continue
            why = f"{reason}, same person as {username}"
            self.admin.suspend(by, other.username)
            self._started(officer, account, Mode.ACCOUNT_SUSPENDED, other.username, why)

    def _started(
        self, officer: Officer, account: Account, mode: Mode, target: str | None, reason: str
    ) -> Containment:
        """Start a containment ``account`` (``officer``'s) asked for, recorded."""
        started = self.store.start(mode, target, reason, f"staff:{account.username}")
        said, sealed = entry_words(self.store.words, started.binding, reason, STARTED_REASON)
        self._record(
            Tag.CONTAIN_STARTED,
            Outcome.SUCCESS,
            officer,
            said,
            account,
            mode=mode.value,
            target=target,
            containment=started.containment_id,
            **sealed,
        )
        return started

    def release(self, officer: Officer, containment_id: int, reason: str) -> Containment:
        account = self._authorize(officer, f"release #{containment_id}")
        by = f"staff:{account.username}"
        current = self.store.get(containment_id)
        if current.active:
            self._not_named_in(officer, account, current)
        if current.mode is Mode.ACCOUNT_SUSPENDED and current.active:
            self._not_about_them(officer, account, current.target or "", containment_id)
            self.admin.reinstate(by, current.target or "")
        released = self.store.release(containment_id, by)
        said, sealed = entry_words(
            self.store.words,
            release_binding(containment_id, released.released_us),
            reason,
            RELEASED_REASON,
        )
        self._record(
            Tag.CONTAIN_RELEASED,
            Outcome.SUCCESS,
            officer,
            said,
            account,
            mode=released.mode.value,
            target=released.target,
            containment=containment_id,
            **sealed,
        )
        self.ledger.checkpoints.make(f"containment {containment_id} released")
        return released

    def _not_named_in(self, officer: Officer, account: Account, action: Containment) -> None:
        """An officer an open incident names as compromised does not lift that incident's
        containment (adversary round 58: the officer named released the block of the
        addresses they read from, and patient data taken offline for it), as they do not
        narrow or close the incident (round 41). Refused, and recorded; another officer
        releases it."""
        if self.named_by is None or not self.named_by(action, f"staff:{account.username}"):
            return
        self._record(
            Tag.CONTAIN_REFUSED,
            Outcome.DENIED,
            officer,
            f"release #{action.containment_id}: an incident it contains names them",
            account,
        )
        raise ContainmentRefused(
            "an officer an incident names as compromised does not lift its containment; "
            "ask another privacy officer"
        )

    def _not_their_own_grant(self, officer: Officer, account: Account, grant_id: str) -> None:
        """An officer does not approve an emergency grant asked for by an account of their
        own person (adversary round 57: a doctor's officer login approved what their
        physician login asked, while patient data was offline). Refused, and recorded."""
        requester = self.accounts.get(self.break_glass.get(grant_id).account_id)
        if requester is not None:
            self._refuse_own(
                officer,
                account,
                requester.username,
                f"approve {grant_id}: it is their own",
                "another privacy officer approves what is about you",
            )

    def _not_about_them(
        self, officer: Officer, account: Account, username: str, containment_id: int
    ) -> None:
        """An officer does not lift the suspension of an account of their own person
        (one naming their practitioner), as they do not dismiss an alert about it
        (``AlertDesk._not_about_self``): adversary round 56, a doctor's officer login
        reinstated their suspended physician login. Refused, and recorded."""
        self._refuse_own(
            officer,
            account,
            username,
            f"release #{containment_id}: it is about them",
            "another privacy officer handles what is about you",
        )

    def _refuse_own(
        self, officer: Officer, account: Account, username: str, recorded: str, told: str
    ) -> None:
        """Refuse (``told``), and record why (``recorded``), what ``account`` asks about
        ``username`` when the two are one person (``StaffAccounts.same_person``)."""
        if not self.accounts.same_person(account.username, username):
            return
        self._record(Tag.CONTAIN_REFUSED, Outcome.DENIED, officer, recorded, account)
        raise ContainmentRefused(told)

    def erase_patient(
        self, officer: Officer, pseudonym: str, reason: str, keys: KeyService
    ) -> None:
        """Crypto-shredding on an erasure request: the patient's data key is destroyed,
        so every version of every record of theirs is unreadable for good. The ledger
        keeps the proof (it names the patient only by pseudonym), and the officer's
        ``reason`` sealed under a key of its own: an officer writes who asked ("asked in
        person by <name>, <HKID>"), which the ledger would keep in the clear for good
        beside the erased patient's pseudonym (adversary round 67). ``erasures`` shows
        the words to an officer, recorded."""
        reason = reason.strip()
        if not reason or len(reason) > MAX_ERASURE_REASON:
            raise ValueError(f"say why in 1 to {MAX_ERASURE_REASON} characters (sealed, recorded)")
        account = self._authorize(officer, "erase a patient")
        self._not_held(officer, account, pseudonym)
        at_us = self.store.now_us()
        sealed = _erasure_words(keys).seal(f"{pseudonym}|{at_us}", reason)
        keys.shred(pseudonym)
        self.ledger.writer.record(
            [
                AuditEvent(
                    tag=Tag.PATIENT_ERASED,
                    outcome=Outcome.SUCCESS,
                    at_us=at_us,
                    principal=f"staff:{account.username}",
                    role=str(account.role),
                    source_address=officer.source_address,
                    patient_pseudonym=pseudonym,
                    reason=ERASURE_REASON_SEALED,
                    detail={"reason_sealed": sealed},
                )
            ]
        )
        self.ledger.checkpoints.make("erasure")

    def erasures(self, officer: Officer, pseudonym: str, keys: KeyService) -> list[Erasure]:
        """The erasures of the patient ``pseudonym``, each with the words its officer
        gave, unsealed only once an entry naming who is shown them, and the patient, is
        in the ledger (fail closed: nothing is unsealed if it cannot be written). An
        erasure recorded before the words were sealed shows its entry's reason."""
        account = self._authorize(officer, "show an erasure's reason")
        found = [
            (seq, event)
            for seq, data in self._trail(pseudonym)
            if (event := AuditEvent.from_canonical(data, seq=seq)).tag is Tag.PATIENT_ERASED
            and event.outcome is Outcome.SUCCESS
        ]
        if not found:
            return []
        self.ledger.writer.record(
            [
                AuditEvent(
                    tag=Tag.PATIENT_ERASURE_SHOWN,
                    outcome=Outcome.SUCCESS,
                    at_us=self.store.now_us(),
                    principal=f"staff:{account.username}",
                    role=str(account.role),
                    source_address=officer.source_address,
                    patient_pseudonym=pseudonym,
                    reason=f"the reason of the erasure at position {seq} shown",
                )
                for seq, _ in found
            ]
        )
        words = _erasure_words(keys)
        return [
            Erasure(seq, event.at_us, event.principal or "", _reason(words, pseudonym, seq, event))
            for seq, event in found
        ]

    def _trail(self, pseudonym: str) -> Iterator[tuple[int, bytes]]:
        """Every ledger entry of the patient ``pseudonym``, oldest first, read 10,000 at a
        time: the erasure comes after the rest of a patient's trail, and a patient read at
        every visit for years has more entries than one page (adversary round 68: the
        first 10,000 were read, and such a patient was told "not erased")."""
        after = -1
        while batch := self.ledger.store.find(subject=pseudonym, after_seq=after, limit=10_000):
            yield from batch
            after = batch[-1][0]

    def _not_held(self, officer: Officer, account: Account, pseudonym: str) -> None:
        """A patient an open incident's scope holds is not erased: their records are its
        evidence, and an erased patient is left out of the notices as no longer on record
        (adversary round 58: an officer shredded the key of a patient they had read, so
        the patient was never told). Close the incident first. Fail closed: a scope that
        cannot be computed refuses too."""
        principal = f"staff:{account.username}"
        try:
            held = self.held_by(pseudonym, principal) if self.held_by is not None else []
        except Exception as error:  # noqa: BLE001 - whatever stops the check stops the erasure
            held, why = [-1], type(error).__name__
        else:
            why = ""
        if not held:
            return
        named = ", ".join(str(n) for n in held if n >= 0) or f"unknown ({why})"
        self._record(
            Tag.CONTAIN_REFUSED, Outcome.DENIED, officer,
            f"erase a patient: held by incident {named}", account, patient=pseudonym,
        )  # fmt: skip
        raise ContainmentRefused(
            f"the patient is in the scope of incident {named}, not closed: their records "
            "are its evidence and they are owed a notice; close the incident first"
        )

    def approve_emergency(self, officer: Officer, grant_id: str) -> Grant:
        """A second privacy officer (not the one who took the data offline, and not the
        requester) lets one clinician reach one patient's record for a while."""
        account = self._authorize(officer, f"approve {grant_id}")
        offline = [item for item in self.store.current().active if item.mode is Mode.PHI_OFFLINE]
        # The one who took data offline, by any officer login of theirs (round 57).
        if any(
            self.accounts.same_person(item.started_by.removeprefix("staff:"), account.username)
            for item in offline
            if item.started_by.startswith("staff:")
        ):
            self._record(
                Tag.CONTAIN_REFUSED,
                Outcome.DENIED,
                officer,
                f"approve {grant_id}: needs a second privacy officer",
                account,
            )
            raise ContainmentRefused(
                "a second privacy officer (not the one who took patient data offline) must approve"
            )
        self._not_their_own_grant(officer, account, grant_id)
        grant = self.break_glass.approve(grant_id, account.account_id)
        self._record(
            Tag.EMERGENCY_APPROVED,
            Outcome.SUCCESS,
            officer,
            f"grant {grant_id} approved until {grant.expires_us}",
            account,
            grant=grant_id,
        )
        self.ledger.checkpoints.make(f"emergency access {grant_id}")
        return grant


def _reason(words: SealedWords, pseudonym: str, seq: int, event: AuditEvent) -> str:
    """The words of the erasure ``event`` (at ledger position ``seq``): sealed in its
    detail; an erasure recorded before they were sealed has them as its reason."""
    sealed = event.detail.get("reason_sealed")
    if not isinstance(sealed, str):
        return event.reason or ""
    return words.open(
        f"{pseudonym}|{event.at_us}", sealed, where=f"the erasure at ledger position {seq}"
    )
