"""What a privacy officer does with alerts: acknowledge, dismiss, flag patients (VIP,
decoy), lift a throttle. Each needs the officer's fresh TOTP code and is recorded in
the audit ledger, like every containment switch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from carevault.access.accounts import SignInFailed, StaffAccounts, officer_refusal
from carevault.detect.alerts import Alert, AlertStore
from carevault.detect.decoys import KIND as DECOY_CONTACT
from carevault.detect.decoys import DecoyContacts, generate
from carevault.detect.flags import SWITCH_OFF, Flags
from carevault.detect.kin import Kinship
from carevault.keys.words import SealedWords, entry_reason, entry_words
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.trail import AuditTrail

#: What an officer's reasons for handling alerts are sealed as.
ALERT_WORDS = "carevault-alert-handling/1"


def handled_binding(alert_id: int, status: str, at_us: int) -> str:
    """What the reason an alert was handled for is sealed bound to (its ledger entry's
    alert, status and time)."""
    return f"{alert_id}|{status}|{at_us}"


#: How long an officer's request to switch a patient's flag off waits for another
#: officer's confirmation: a day.
CONFIRM_WITHIN_US = 24 * 3600 * 1_000_000


@dataclass(frozen=True)
class Flagged:
    """A patient's flag as an officer left it: ``done`` False while switching it off
    waits for another officer."""

    pseudonym: str
    done: bool


class OfficerRefused(Exception):
    """Not a privacy officer, or no fresh TOTP code: refused, and recorded."""


@dataclass(frozen=True)
class OfficerCode:
    username: str
    totp: str
    source_address: str | None = None


class AlertDesk:
    def __init__(
        self,
        alerts: AlertStore,
        flags: Flags,
        accounts: StaffAccounts,
        audit: AuditTrail,
        pseudonym_of: Callable[[str], str | None],
        now_us: Callable[[], int],
        kinship: Kinship,
        decoys: DecoyContacts,
        words: SealedWords | None = None,
    ) -> None:
        """``words`` seals the reasons officers give for handling an alert ("his mother
        is Mrs Chan") in the ledger (``keys.words.officer_words``); None: kept as typed."""
        self.words = words
        self.kinship = kinship
        self.decoys = decoys
        self.alerts = alerts
        self.flags = flags
        self.accounts = accounts
        self.audit = audit
        self.pseudonym_of = pseudonym_of
        self.now_us = now_us

    def _record(
        self,
        tag: Tag,
        outcome: Outcome,
        officer: OfficerCode,
        reason: str,
        at_us: int | None = None,
        **detail: object,
    ) -> None:
        self.audit.record(
            [
                AuditEvent(
                    tag=tag,
                    outcome=outcome,
                    at_us=self.now_us() if at_us is None else at_us,
                    principal=f"staff:{officer.username}",
                    source_address=officer.source_address,
                    reason=reason,
                    detail=dict(detail),
                )
            ]
        )

    def _authorize(self, officer: OfficerCode, action: str) -> None:
        try:
            self.accounts.confirm_officer(officer.username, officer.totp, officer.source_address)
        except SignInFailed as failure:
            self._record(
                Tag.CONTAIN_REFUSED, Outcome.DENIED, officer, f"{action}: {failure.reason}"
            )
            raise OfficerRefused(officer_refusal(failure)) from None

    def _not_about_self(self, officer: OfficerCode, username: str | None, action: str) -> None:
        """An officer does not close what was raised about them: the one role that reads
        every clinic's patients would review itself, and leave nothing open for another
        officer to see. Refused, and recorded. "Them" is the person: an account naming
        the officer's own practitioner is theirs too, as the release budget counts it
        (adversary round 56: a doctor's officer login dismissed the alert about their
        physician login)."""
        if username is not None and self.accounts.same_person(officer.username, username):
            self._record(
                Tag.CONTAIN_REFUSED, Outcome.DENIED, officer, f"{action}: it is about them"
            )
            raise OfficerRefused("another privacy officer handles what is about you")

    def handle(self, officer: OfficerCode, alert_id: str, status: str, reason: str = "") -> Alert:
        alert = self.alerts.get(alert_id)
        self._authorize(officer, f"{status} alert {alert.alert_id}")
        self._not_about_self(officer, alert.account, f"{status} alert {alert.alert_id}")
        at_us = self.now_us()
        handled = self.alerts.set_status(alert.alert_id, status, f"staff:{officer.username}", at_us)
        said, sealed = entry_words(
            self.words,
            handled_binding(alert.alert_id, status, at_us),
            reason,
            f"{status} (the officer's reason sealed in the detail)",
        )
        self._record(
            Tag.DETECT_ALERT_HANDLED, Outcome.SUCCESS, officer, said or status,
            alert=alert.alert_id, status=status, at_us=at_us, **sealed,
        )  # fmt: skip
        return handled

    def reason_of(self, event: AuditEvent) -> str:
        """The reason an officer gave for handling an alert (its ``DETECT_ALERT_HANDLED``
        entry), opened."""
        binding = handled_binding(
            int(str(event.detail.get("alert", 0))), str(event.detail.get("status", "")), event.at_us
        )
        return entry_reason(self.words, binding, event.reason or "", event.detail)

    def flag(self, officer: OfficerCode, kind: str, patient_id: str, *, on: bool = True) -> Flagged:
        """Mark a patient VIP or decoy, or unmark them.

        Marking is one officer's act; unmarking takes two. A VIP or decoy flag off is a
        patient no longer watched: one officer who switched it off could then read the
        patient unnoticed, or let a colleague (round 58 left it open). The first officer
        asks (``Flagged.done`` False), and another officer, not the same person, confirms
        within ``CONFIRM_WITHIN_US`` by asking too; both are recorded. Marking the
        patient again drops a pending request."""
        if kind not in SWITCH_OFF:
            raise ValueError("a patient flag is vip or decoy")
        pseudonym = self.pseudonym_of(patient_id)
        if pseudonym is None:
            raise KeyError(f"no patient {patient_id!r}")
        self._authorize(officer, f"flag {kind}")
        by = f"staff:{officer.username}"
        request = SWITCH_OFF[kind]
        if on:
            self.flags.set(kind, pseudonym, by)
            self.flags.set(request, pseudonym, by, on=False)
            self._record(
                Tag.DETECT_FLAG_SET, Outcome.SUCCESS, officer, f"{kind} on",
                flag=kind, on=True, patient=pseudonym,
            )  # fmt: skip
            return Flagged(pseudonym, done=True)
        if self.flags.held(kind, pseudonym) is None:
            self.flags.set(request, pseudonym, by, on=False)
            return Flagged(pseudonym, done=True)
        asked = self.flags.held(request, pseudonym)
        if (
            asked is None
            or self.now_us() - asked[1] > CONFIRM_WITHIN_US
            or self.accounts.same_person(officer.username, asked[0].removeprefix("staff:"))
        ):
            self.flags.set(request, pseudonym, by)
            self._record(
                Tag.DETECT_FLAG_SET, Outcome.SUCCESS, officer,
                f"{kind} off asked: another privacy officer confirms",
                flag=kind, on=True, off_asked=True, patient=pseudonym,
            )  # fmt: skip
            return Flagged(pseudonym, done=False)
        self.flags.set(kind, pseudonym, by, on=False)
        self.flags.set(request, pseudonym, by, on=False)
        self._record(
            Tag.DETECT_FLAG_SET, Outcome.SUCCESS, officer, f"{kind} off",
            flag=kind, on=False, patient=pseudonym, asked_by=asked[0],
        )  # fmt: skip
        return Flagged(pseudonym, done=True)

    def unthrottle(self, officer: OfficerCode, username: str) -> None:
        self._authorize(officer, f"lift the throttle on {username}")
        self._not_about_self(officer, username, f"lift the throttle on {username}")
        self.flags.set("throttle", f"staff:{username}", f"staff:{officer.username}", on=False)
        self._record(
            Tag.DETECT_FLAG_SET, Outcome.SUCCESS, officer, "throttle lifted",
            flag="throttle", on=False, account=username,
        )  # fmt: skip

    def identify(
        self,
        officer: OfficerCode,
        username: str,
        *,
        surname: str | None = None,
        address_lines: Sequence[str] = (),
        hkid: str | None = None,
    ) -> list[str]:
        """Record what HR knows of a member of staff (their surname, home address, HKID
        number), kept only as keyed blind tokens for the snooping detectors; replaces
        what was kept before. Returns the kinds kept. KeyError for an unknown account,
        ValueError (naming the field, never the value) for an unusable value."""
        if self.accounts.find(username) is None:
            raise KeyError(f"no staff account {username!r}")
        self._authorize(officer, f"identify {username}")
        # What HR knows of the officer's own person replaces the tokens the snooping
        # detectors judge them by: another officer records it (adversary round 57).
        self._not_about_self(officer, username, f"identify {username}")
        kinds = self.kinship.identify(
            f"staff:{username}", f"staff:{officer.username}",
            surname=surname, address_lines=address_lines, hkid=hkid,
        )  # fmt: skip
        self._record(
            Tag.DETECT_STAFF_IDENTIFIED, Outcome.SUCCESS, officer, "kinship tokens replaced",
            account=username, kinds=kinds,
        )  # fmt: skip
        return kinds

    def decoy_contact(
        self, officer: OfficerCode, kind: str, *, domain: str = "", value: str | None = None
    ) -> str:
        """Plant a decoy contact detail: ``value`` (one the group controls), or a new one
        drawn at random (an address at ``domain``, a mobile number). Kept only as a keyed
        blind token; returned once, to be written into a decoy record."""
        chosen = value if value is not None else generate(kind, domain)
        subject = self.decoys.subject(kind, chosen)
        self._authorize(officer, f"plant a decoy {kind}")
        self.flags.set(DECOY_CONTACT, subject, f"staff:{officer.username}")
        self._record(
            Tag.DETECT_FLAG_SET, Outcome.SUCCESS, officer, f"decoy {kind} planted",
            flag=DECOY_CONTACT, on=True, kind=kind,
        )  # fmt: skip
        return chosen
