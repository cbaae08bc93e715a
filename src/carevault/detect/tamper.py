"""Stored data altered under the server: what someone who may write to the database,
but holds no key, leaves behind (adversary round 69). A record that fails its integrity
check was altered or moved between rows (its sealed body, or the patient or clinic
beside it); a witness that refuses a checkpoint for a conflict saw the ledger rolled
back or rewritten; a containment mode released, edited or deleted without the key its
rows are sealed with is kept on, and told; a staff account or a client app (round 70)
whose row does not match its seal is refused, and told; a registration or a care
relationship (stop 57) that does not match places or opens nothing, and is told; so is
a session or app whose row was written back over a revocation or step-up the register
beside the keyring holds, and that register not written or read (round 71). The
caller who met the altered record is not to blame: the alert is for a person to judge
(``respond.RAISE_ONLY``), and names no patient, since the row's patient is what may
have been altered (a registration or care relationship is named by a digest and the
clinic it claims)."""

from __future__ import annotations

from carevault.access.accounts import ACCOUNT_ALTERED
from carevault.detect.model import DAY_US, Access, Finding, Severity
from carevault.ledger.events import Tag

DETECTOR = "stored-data-altered"
#: The reasons a refused access is recorded with when what is stored failed its check
#: (``vault`` and ``keys``: a sealed record, a wrapped key, a shredded key put back).
INTEGRITY_FAILURES = frozenset({"RecordIntegrityError", "KeyIntegrityError", "ShredUndone"})


#: Rows of policy state found not to match their seals, by the tag of the entry that
#: tells of one: (what the row is, the entry's detail naming it, what was edited and
#: what CareVault does with it).
_SEALED_ROWS: dict[str, tuple[str, str, str]] = {
    Tag.ACCOUNT_ALTERED.value: (
        "staff account",
        "account",
        "its role, clinics or practitioner were edited in the database; its sessions are refused",
    ),
    Tag.SESSION_ALTERED.value: (
        "session",
        "session",
        "whom it acts for, its scopes, patient, expiry, revocation or step-up were edited "
        "in the database; refused",
    ),
    Tag.ACCESS_BREAK_GLASS_ALTERED.value: (
        "break-the-glass grant",
        "grant",
        "inserted or edited in the database; it opens nothing and explains no access",
    ),
    Tag.CLIENT_ALTERED.value: (
        "client app",
        "client",
        "its clinics, scopes, credentials, account or revocation were edited in the "
        "database; it is refused",
    ),
    Tag.ACCESS_REGISTRATION_ALTERED.value: (
        "registration",
        "registration",
        "inserted or edited in the database; it places the patient nowhere",
    ),
    Tag.ACCESS_CARE_ALTERED.value: (
        "care relationship",
        "relationship",
        "inserted or edited in the database; it opens nothing and explains no access",
    ),
}


def tamper_finding(access: Access) -> Finding | None:
    """A critical finding for an entry that shows stored data altered, else None."""
    if access.tag == Tag.AUDIT_WITNESS_REFUSED.value:
        if not access.detail.get("diverged"):
            return None
        explanation = (
            f"ledger entry {access.position}: witness {access.detail.get('witness')} refused "
            f"checkpoint {access.detail.get('size')} of the {access.detail.get('ledger')} "
            "ledger: the database was rolled back or its ledger rewritten"
        )
    elif access.tag == Tag.SESSION_ALTERED.value and access.detail.get("why"):
        explanation = (
            f"ledger entry {access.position}: session {access.detail.get('session')}: a "
            f"row saved before its {access.detail.get('lifted')} was written back in the "
            "database; the register beside the keyring holds it, and the session is refused"
        )
    elif access.tag == Tag.CLIENT_ALTERED.value and access.detail.get("why"):
        explanation = (
            f"ledger entry {access.position}: client app {access.detail.get('client')}: a "
            "row saved before its revocation was written back in the database; the "
            "register beside the keyring holds it, and the app is refused"
        )
    elif access.tag == Tag.REGISTER_FAILED.value:
        explanation = (
            f"ledger entry {access.position}: the {access.detail.get('register')} register "
            f"beside the keyring: {access.detail.get('what')}. A revocation or step-up not "
            "written there stands in the database alone, where a row written back undoes "
            "it; one not read refuses every session. Check the custodian's folder"
        )
    elif access.tag in _SEALED_ROWS:
        kind, key, what = _SEALED_ROWS[access.tag]
        explanation = (
            f"ledger entry {access.position}: {kind} {access.detail.get(key)} does not "
            f"match its seal: {what}"
        )
    elif access.tag == Tag.CONTAIN_ALTERED.value:
        explanation = (
            f"ledger entry {access.position}: containment "
            f"#{access.detail.get('containment')} ({access.detail.get('mode')}) was "
            f"{access.detail.get('why')} in the database, by someone without the key its "
            "rows are sealed with: kept on"
        )
    elif access.reason == ACCOUNT_ALTERED:
        explanation = (
            f"ledger entry {access.position}: a sign-in or step-up refused: the account "
            "does not match its seal (its role, clinics or practitioner were edited in the "
            "database)"
        )
    elif access.outcome == "failed" and access.reason in INTEGRITY_FAILURES:
        explanation = (
            f"ledger entry {access.position}: a stored {access.resource_type or 'record'} "
            "failed its integrity check when read: altered in the database or moved "
            "between rows"
        )
    else:
        return None
    return Finding(
        DETECTOR,
        Severity.CRITICAL,
        str(access.at_us // DAY_US),
        explanation,
        access,
    )
