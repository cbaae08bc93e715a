"""The console's labels in English. Keys are shared with ``catalogue_zh``; ``{name}``
marks a blank the page fills in."""

from __future__ import annotations

MESSAGES: dict[str, str] = {
    # Frame
    "app.name": "CareVault console",
    "app.skip": "Skip to main content",
    "app.signed_in_as": "{name}, {role}",
    "app.footer": "Every action in this console is recorded in the audit ledger.",
    "nav.label": "Console sections",
    "nav.dashboard": "Dashboard",
    "nav.alerts": "Alerts",
    "nav.containment": "Containment",
    "nav.staff": "Staff and sessions",
    "nav.break_glass": "Break-the-glass review",
    "nav.incidents": "Incidents",
    "nav.patients": "Patient access report",
    "nav.account": "My account",
    "nav.sign_out": "Sign out",
    "nav.soon": "not yet available",
    "common.cancel": "Cancel",
    "language.en": "English",
    "language.zh-Hant": "Traditional Chinese",
    # Time
    "time.never": "never",
    "time.just_now": "just now",
    "time.minutes_ago": "{n} min ago",
    "time.hours_ago": "{n} h ago",
    "time.days_ago": "{n} days ago",
    # Roles
    "role.physician": "Physician",
    "role.nurse": "Nurse",
    "role.pharmacist": "Pharmacist",
    "role.front_desk": "Front desk",
    "role.billing": "Billing",
    "role.clinic_manager": "Clinic manager",
    "role.privacy_officer": "Privacy officer",
    "role.integration": "Integration",
    "role.system": "CareVault itself",
    "role.administrator": "Administrator",
    # Sign-in
    "signin.title": "Sign in to the CareVault console",
    "signin.intro": "For the privacy officer and clinic managers.",
    "signin.username": "Username",
    "signin.password": "Password",
    "signin.code": "Authenticator code",
    "signin.code_hint": "The 6-digit code your authenticator app shows now.",
    "signin.submit": "Sign in",
    "signin.failed": (
        "Sign-in failed. Check your username, password and code, and try again in a little while."
    ),
    "signin.not_for_role": (
        "Your sign-in is correct, but the console is only for the privacy officer and "
        "clinic managers."
    ),
    "signin.expired": "The sign-in form had expired. Please try again.",
    "signin.timed_out": "You were signed out because the console was not used for a while.",
    "signin.signed_out": "You have signed out.",
    "signin.after_reset": "Sign in with a code from your new authenticator entry.",
    "signin.required": "Please sign in to continue.",
    # Step-up
    "stepup.code": "A fresh code from your authenticator",
    "stepup.hint": "A code you have not used before: wait for the next one if needed.",
    "stepup.refused": (
        "That code was not accepted. Use a new code from your own authenticator; each "
        "code works only once."
    ),
    # Placeholders
    "pending.title": "Not yet available",
    "pending.alerts": (
        "Alert cases come from the detection service, which is not part of this version. "
        "When it is, this page lists each case with its explanation and evidence, and "
        "lets you acknowledge, dismiss, contain the account or declare an incident."
    ),
    "pending.incidents": (
        "Incidents, their scope reports, notices and regulator reports are not part of "
        "this version. When they are, this page lets you declare and amend incidents and "
        "follow their deadlines."
    ),
    "pending.meanwhile": (
        "Until then, use Containment to act on a suspected breach and the patient access "
        "report to see who opened a record."
    ),
    "pending.alerts_short": "Not yet available: alerts arrive with the detection service.",
    "pending.incidents_short": "Not yet available: incident clocks arrive with incidents.",
    # Errors
    "error.back": "Back to the dashboard",
    "error.forbidden_title": "Not available to your role",
    "error.forbidden": "This page is for the privacy officer. Nothing was changed.",
    "error.csrf_title": "Request refused",
    "error.csrf": (
        "This request did not come from your own console page, so it was refused and "
        "nothing was changed. Reload the page and try again."
    ),
    "error.foreign_title": "Opened from another site",
    "error.foreign": (
        "This page was asked for by another site, not by the console itself, so nothing "
        "was shown or done, and the request was recorded. Open the console directly to "
        "continue."
    ),
    "error.malformed_title": "Request not understood",
    "error.malformed": (
        "The link or form asked for something the console does not have: an id or a "
        "choice that is not one of its own. Nothing was changed."
    ),
    "error.not_found_title": "Page not found",
    "error.not_found": "There is no such page in the console.",
    # Dashboard
    "dashboard.title": "Dashboard",
    "dashboard.alerts": "Open alert cases",
    "dashboard.clocks": "Incident deadline clocks",
    "dashboard.containment": "Containment now",
    "dashboard.no_containment": "No containment mode is on.",
    "dashboard.to_containment": "Go to containment",
    "dashboard.ledgers": "Audit ledgers",
    "dashboard.keys": "Key provider",
    "dashboard.activity": "Accesses to patient records, last 24 hours",
    "dashboard.activity_help": (
        "Per hour, by the clinic of the person or app that made them. A clinic manager "
        "sees their own clinics only."
    ),
    "dashboard.chart_title": "Accesses to patient records per hour, by clinic",
    "dashboard.chart_desc": (
        "{total} accesses in the last 24 hours; the table below gives each figure."
    ),
    "dashboard.no_activity": "No access to patient records in the last 24 hours.",
    "dashboard.figures": "Show the figures as a table",
    "dashboard.hour": "Hour",
    "chart.system": "CareVault itself",
    "chart.several": "Several clinics",
    "chart.other": "Other clinics",
    # Ledgers
    "ledger.name": "Ledger",
    "ledger.audit": "Access ledger",
    "ledger.unwrap": "Key unwrap ledger",
    "ledger.entries": "Entries",
    "ledger.checkpoint": "Last signed checkpoint",
    "ledger.checkpoint_at": "{when}, {size} entries",
    "ledger.behind": "({n} newer entries not yet signed)",
    "ledger.no_checkpoint": "none yet",
    "ledger.cosigned": "Last witness cosignature",
    "ledger.cosigned_at": "{when} by {witness}",
    "ledger.never_cosigned": "never cosigned",
    "ledger.verified": "Last full verification",
    "ledger.verify_ok": "Passed, {when} ({entries} entries)",
    "ledger.verify_bad": "FAILED, {when}:",
    "ledger.never_verified": "never run",
    "ledger.verify_running": "A verification started at {when} has not finished.",
    "ledger.verify_now": "Verify both ledgers now",
    "ledger.verify_hint": "Runs in the background; reload the dashboard for the result.",
    # Keys
    "keys.off": "Encryption is off (allowed only for benchmarks).",
    "keys.provider": "Provider",
    "keys.provider.local": "Local keyring file",
    "keys.provider.pkcs11": "Hardware security module (PKCS#11)",
    "keys.state": "State",
    "keys.reachable": "Reachable",
    "keys.unreachable": "Cannot be reached: records cannot be decrypted",
    "keys.active": "Active key version",
    "keys.held": "versions held: {versions}",
    "keys.pending": "Data keys still to re-wrap",
    "keys.lockdown": "Key lockdown",
    "keys.lockdown_on": "ON: no record can be decrypted",
    "keys.lockdown_off": "off",
    # Containment
    "containment.title": "Containment",
    "containment.intro": (
        "Each switch takes effect in every CareVault server within a second. Starting or "
        "releasing one needs a fresh code from your authenticator, and is recorded in the "
        "audit ledger with a signed checkpoint."
    ),
    "containment.active": "On now",
    "containment.mode": "Mode",
    "containment.target": "Applies to",
    "containment.since": "Since",
    "containment.by": "By",
    "containment.reason": "Reason",
    "containment.actions": "Actions",
    "containment.release": "Release…",
    "containment.modes": "Modes you can switch on",
    "containment.view_only": "Only the privacy officer can switch modes on or off.",
    "containment.start": "Start…",
    "containment.start_title": "Start a containment mode",
    "containment.confirm_start": "Start: {mode}",
    "containment.what_it_does": "What this will do",
    "containment.reason_label": "Reason (recorded in the ledger)",
    "containment.confirm_button": "Start {mode} now",
    "containment.invalid": "This could not be started:",
    "containment.release_title": "Release a containment mode",
    "containment.confirm_release": "Release #{id}: {mode}",
    "containment.what_release_does": "What releasing will do",
    "containment.release_button": "Release {mode} now",
    "containment.emergency": "Emergency access requests",
    "containment.emergency_help": (
        "While patient data is offline, a clinician can ask to open one patient's record. "
        "A privacy officer other than the one who took the data offline must approve it."
    ),
    "containment.no_emergency": "No request is waiting.",
    "containment.approve": "Approve",
    "containment.history": "Released earlier",
    "containment.no_history": "Nothing has been released yet.",
    "containment.from_to": "From – to",
    "containment.done.started": "Containment #{id} is on.",
    "containment.done.released": "Containment #{id} is released.",
    "containment.done.approved": "Emergency access approved.",
    "containment.done.approval-refused": "Not approved: that code was not accepted.",
    "containment.done.approval-second": (
        "Not approved: a second privacy officer must approve, not the one who took "
        "patient data offline."
    ),
    "containment.done.approval-invalid": "That request no longer awaits approval.",
    # Modes
    "mode.phi-offline": "Patient data offline",
    "mode.phi-offline.does": (
        "Patient records stop being served: reading, searching and changing patient data "
        "is refused with a clear message. Scheduling keeps working (appointments, slots, "
        "schedules, practitioners, locations and clinics), and a patient with an open "
        "appointment still shows their name to staff who may read that patient."
    ),
    "mode.phi-offline.reaches": (
        "Every clinic app and every staff member is affected. Clinicians can ask for "
        "emergency access to one patient; another privacy officer approves it."
    ),
    "mode.phi-offline.release": (
        "Patient records are served again, within a second, to everyone the access policy allows."
    ),
    "mode.read-only": "Read-only",
    "mode.read-only.does": (
        "Nothing can be created, changed or deleted. Reading and searching continue as usual."
    ),
    "mode.read-only.reaches": "Every clinic app and every staff member is affected.",
    "mode.read-only.release": "Changes are accepted again, within a second.",
    "mode.key-lockdown": "Key lockdown",
    "mode.key-lockdown.does": (
        "The key service stops unwrapping data keys: no record can be decrypted, for "
        "anyone, until it is released. Use it when the key service or the application "
        "host may be compromised."
    ),
    "mode.key-lockdown.reaches": (
        "Every clinic stops seeing patient records at once, and this console cannot look "
        "patients up either."
    ),
    "mode.key-lockdown.release": "Data keys are unwrapped again and records can be read.",
    "mode.clinic-lock": "Clinic lock",
    "mode.clinic-lock.does": (
        "One clinic's patient records are locked: reading and changing records that "
        "belong to it are refused. Other clinics carry on."
    ),
    "mode.clinic-lock.reaches": "Everyone who would open that clinic's records is refused.",
    "mode.clinic-lock.target": "Clinic",
    "mode.clinic-lock.target_hint": "The clinic's identifier.",
    "mode.clinic-lock.release": "The clinic's records can be read and changed again.",
    "mode.block-address": "Block an address",
    "mode.block-address.does": (
        "Requests from an address or a range of addresses are refused at the door, before "
        "any sign-in."
    ),
    "mode.block-address.reaches": "Only requests from that address or range.",
    "mode.block-address.target": "Address or range",
    "mode.block-address.target_hint": "For example 203.0.113.7 or 203.0.113.0/24.",
    "mode.block-address.release": "Requests from that address are accepted again.",
    "mode.account-suspended": "Suspend a staff account",
    "mode.account-suspended.does": (
        "The account is suspended: every session and token it holds stops working at once, "
        "and it cannot sign in. Releasing it reinstates the account."
    ),
    "mode.account-suspended.reaches": "Only that staff member.",
    "mode.account-suspended.target": "Staff member",
    "mode.account-suspended.target_hint": "Their username.",
    "mode.account-suspended.release": (
        "The account is reinstated: it can sign in again. Its old sessions stay ended."
    ),
    "mode.client-revoked": "Revoke a client app",
    "mode.client-revoked.does": (
        "The app is revoked: every session opened through it ends and it can no longer get "
        "tokens. Releasing the mode does not bring it back; the app must be registered "
        "again."
    ),
    "mode.client-revoked.reaches": "Everyone using that app.",
    "mode.client-revoked.target": "Client app",
    "mode.client-revoked.target_hint": "The app's client id.",
    "mode.client-revoked.release": (
        "The record of this containment is closed. The app stays revoked."
    ),
    # Staff
    "staff.title": "Staff and sessions",
    "staff.manager_scope": (
        "You see the staff of your own clinics and can end their sessions. Suspending, "
        "new authenticators and client apps are for the privacy officer."
    ),
    "staff.account": "Account",
    "staff.no_sessions": "Not signed in anywhere.",
    "staff.unknown": "There is no such staff member among those you can see.",
    "staff.their_sessions": "Where they are signed in",
    "staff.signed_in": "Signed in now",
    "staff.person": "Staff member",
    "staff.app": "Through",
    "staff.console": "This console",
    "staff.from": "From",
    "staff.since": "Since",
    "staff.last_seen": "Last active",
    "staff.end_session": "End session",
    "staff.session_ended": "Session ended.",
    "staff.session_gone": "That session had already ended.",
    "staff.nobody": "Nobody is signed in.",
    "staff.people": "Staff accounts",
    "staff.find": "Find by name or username",
    "staff.find_button": "Find",
    "staff.showing": "Showing {shown} of {matching} matching ({total} in all).",
    "staff.clinics": "Clinics",
    "staff.state": "State",
    "staff.active": "Active",
    "staff.suspended": "Suspended",
    "staff.act": "Act…",
    "staff.you": "you",
    "staff.suspend": "Suspend now",
    "staff.reinstate": "Reinstate now",
    "staff.reinstate_does": "The account can sign in again. Its old sessions stay ended.",
    "staff.authenticator": "Issue a new authenticator",
    "staff.authenticator_does": (
        "For a lost or replaced phone: a new secret is made and shown to you once, to hand "
        "over in person; the old one stops working and every session of the account ends."
    ),
    "staff.clients": "Client apps",
    "staff.client": "App",
    "staff.client_kind": "Kind",
    "staff.confidential": "Integration (confidential)",
    "staff.public": "User app (public)",
    "staff.revoked": "Revoked",
    "staff.revoke": "Revoke…",
    "staff.revoke_button": "Revoke now",
    "staff.no_clients": "No client app is registered.",
    "staff.done.suspended": "The account is suspended; its sessions have ended.",
    "staff.done.reinstated": "The account is reinstated.",
    "staff.done.ended": "The session has ended.",
    "staff.done.revoked": "The app is revoked; its sessions have ended.",
    "staff.done.refused": "Not done: that code was not accepted.",
    "staff.done.invalid": "Not done: that account, session or app was not found.",
    # Enrolment
    "enrol.title": "New authenticator",
    "enrol.self_intro": (
        "Scan this code with your authenticator app. Your old entry no longer works, and "
        "you have been signed out everywhere."
    ),
    "enrol.other_intro": (
        "Give this to {name} in person, to scan with their authenticator app. Their old "
        "entry no longer works and their sessions have ended."
    ),
    "enrol.qr_title": "QR code to add CareVault to an authenticator app",
    "enrol.manual": "Or type this key by hand:",
    "enrol.once": "This is shown only once. Do not photograph or send it.",
    "enrol.sign_in_again": "Sign in again",
    "enrol.back_to_staff": "Back to staff and sessions",
    # Account
    "account.title": "My account",
    "account.you": "You",
    "account.name": "Name",
    "account.username": "Username",
    "account.role": "Role",
    "account.language": "Console language",
    "account.sessions": "Where you are signed in",
    "account.this_one": "this one",
    "account.new_authenticator": "Move to a new authenticator",
    "account.new_authenticator_help": (
        "Confirm with a code from your current authenticator. You will then see a new QR "
        "code once, and be signed out everywhere."
    ),
    "account.new_authenticator_submit": "Make a new authenticator entry",
    # Break the glass
    "glass.title": "Break-the-glass review",
    "glass.intro": (
        "Each time a clinician opened a patient's record without a care relationship, "
        "they gave a reason. Review each one: was it justified?"
    ),
    "glass.grant_heading": "{name}, {when}",
    "glass.who": "Who",
    "glass.reason": "Reason chosen",
    "glass.words": "In their words",
    "glass.window": "Access window",
    "glass.emergency": "emergency access while patient data was offline",
    "glass.awaiting": "awaiting approval",
    "glass.patient": "Patient",
    "glass.patient_report": "Access report of patient {id}",
    "glass.opened": "What they opened under it ({n})",
    "glass.nothing_opened": "Nothing was opened under this grant.",
    "glass.finding": "Your finding",
    "glass.justified": "Justified",
    "glass.unjustified": "Not justified",
    "glass.empty": "Nothing is waiting for review.",
    "glass.done.justified": "Recorded: justified.",
    "glass.done.unjustified": "Recorded: not justified.",
    "glass.done.refused": (
        "Not recorded: the code was not accepted. Use a fresh code from your own authenticator."
    ),
    "glass.done.invalid": "That grant does not exist or was already reviewed.",
    "glass.reason.emergency-treatment": "Emergency treatment",
    "glass.reason.patient-transferred": "Patient transferred to their care",
    "glass.reason.covering-for-colleague": "Covering for a colleague",
    "glass.reason.urgent-medication-review": "Urgent medication review",
    "glass.reason.patient-request-in-person": "Patient asked in person",
    # Patients
    "patients.title": "Patient access report",
    "patients.intro": (
        "Find a patient by medical record number or HKID number, then see everyone who "
        "opened their record. Your search is itself recorded in the patient's record."
    ),
    "patients.find": "Find a patient",
    "patients.identifier": "Medical record number or HKID number",
    "patients.identifier_hint": "For example A123456(3), or the clinic's record number.",
    "patients.why": "Why you are looking",
    "patients.search": "Find",
    "patients.need_both": "Enter a number and say why you are looking.",
    "patients.bad_identifier": "That number could not be searched. Check it and try again.",
    "patients.offline": (
        "Patient data is offline or keys are locked down, so patients cannot be looked up now."
    ),
    "patients.found": "Patients found: {n}",
    "patients.none": "No patient has that number.",
    "patients.no_name": "(name not available)",
    "patients.mrn": "Record number",
    "patients.open_report": "Open the access report",
    "patients.unknown_title": "Patient not found",
    "patients.unknown": "There is no such patient.",
    "patients.budget_title": "Too many patients for now",
    "patients.budget": (
        "Your account has been given as many patients' records and access reports as its "
        "release budget allows for now. Try later, or ask another privacy officer."
    ),
    "patients.bad_purpose_title": "Purpose not accepted",
    "patients.bad_purpose": (
        "Say why you are looking: the patient asked, or a compliance review. Nothing was opened."
    ),
    "purpose.PATRQT": "The patient asked (a data access request)",
    "purpose.HCOMPL": "A compliance review or investigation",
    # Report
    "report.title": "Patient access report",
    "report.patient": "Patient",
    "report.name": "Name",
    "report.phone": "Phone",
    "report.email": "Email",
    "report.address": "Address",
    "report.no_card": (
        "The patient's name cannot be shown while containment keeps patient data offline. "
        "The report below is complete."
    ),
    "report.letter_en": "Letter in English (PDF)",
    "report.letter_zh": "Letter in Chinese (PDF)",
    "report.json": "Report with proofs (JSON)",
    "report.lines": "Accesses to this record: {n}",
    "report.proved": (
        "Every line is an entry of the audit ledger, with its inclusion proof against the "
        "signed checkpoint of {size} entries below."
    ),
    "report.incomplete": (
        "This report is incomplete: it lists the {n} most recent of {total} accesses; the "
        "{left} older ones are not listed. The audit API lists them "
        "(/audit/patients/<id>/access-report?before={before})."
    ),
    "report.after_checkpoint": (
        "{n} more accesses were recorded after the signed checkpoint and are not listed: "
        "open the report again to include them."
    ),
    "report.when": "When",
    "report.who": "Who",
    "report.clinic": "Clinic",
    "report.action": "What",
    "report.record": "Record",
    "report.categories": "Information involved",
    "report.proof": "Proof",
    "report.entry": "Entry {seq}",
    "report.proof_checked": "Checked against the signed checkpoint of {size} entries:",
    "report.break_glass": "break the glass",
    "report.none": "Nobody has opened this record.",
    "report.checkpoint": "The signed checkpoint",
    # Letter
    "letter.from": "{group} · Privacy Office",
    "letter.dear": "Dear {name},",
    "letter.dear_patient": "Dear patient,",
    "letter.title": "Who has opened your health record",
    "letter.opening": (
        "You asked us, under the Personal Data (Privacy) Ordinance (Cap. 486), who has "
        "opened your health record. This letter lists every time a member of our staff or "
        "one of our systems opened or changed it, as our audit ledger recorded it: when, "
        "who, what they did and which kinds of information were involved."
    ),
    "letter.summary": "{n} accesses are listed, up to entry {size} of the ledger.",
    "letter.incomplete": (
        "This letter is not the whole list: it shows the {n} most recent of {total} "
        "accesses, and the {left} older ones are not printed. We will send them on request."
    ),
    "letter.after_checkpoint": (
        "{n} more accesses were recorded after entry {size} and are not in this letter."
    ),
    "letter.how_to_check": (
        "Our audit ledger cannot be changed without it showing: it is signed, countersigned "
        "by an independent witness, and each line below has an inclusion proof, printed in "
        "the appendix. Anyone you choose can check that this list is complete and unaltered "
        "with CareVault's standalone verifier."
    ),
    "letter.questions": (
        "If an access looks wrong to you, please tell us: we will look into it and tell you "
        "what we found."
    ),
    "letter.appendix": "Appendix: the evidence",
    "letter.appendix_intro": (
        "The signed checkpoint of the ledger, then for each entry the hashes of its "
        "inclusion proof (RFC 6962)."
    ),
    "letter.proof_of": "Entry {seq}",
    "letter.no_font_title": "The letter cannot be made",
    "letter.no_font": (
        "No font with Chinese characters is installed on the server. Ask the administrator "
        "to run scripts/setup or set CAREVAULT_PDF_FONT."
    ),
    # Categories, outcomes, actions
    "category.identity": "identity",
    "category.contact": "contact details",
    "category.demographic": "personal details",
    "category.visit": "visits and appointments",
    "category.government_id": "identity document number",
    "category.financial": "billing and insurance",
    "category.clinical": "health information",
    "category.medication": "medication",
    "category.sensitive_clinical": "sensitive health information",
    "category.credentials": "sign-in credentials",
    "outcome.success": "done",
    "outcome.denied": "refused",
    "outcome.failed": "failed",
    "action.fhir:resource:read": "Read",
    "action.fhir:resource:vread": "Read an earlier version",
    "action.fhir:resource:search": "Found in a search",
    "action.fhir:resource:history": "Read the history",
    "action.fhir:bulk:imported": "Loaded by a bulk import",
    "action.fhir:patient:everything": "Read the whole record",
    "action.fhir:resource:create": "Created",
    "action.fhir:resource:update": "Changed",
    "action.fhir:resource:delete": "Deleted",
    "action.fhir:resource:export": "Exported",
    "action.bulk:export:file-released": "Export file downloaded",
    "action.audit:ledger:read": "Read who opened the record (access report)",
    "action.access:break-glass:granted": "Broke the glass",
    "action.access:break-glass:shown": "Shown the clinician's words (break-the-glass review)",
    "action.containment:emergency-access:requested": "Asked for emergency access",
    "action.notify:preview:shown": "Shown the breach notice in full (privacy officer)",
    "action.fhir:patient:registered": "Registered at a clinic",
    "action.fhir:patient:transferred": "Home clinic changed",
    "action.fhir:patient:identifier-removed": "Identifier removed",
    "action.fhir:patient:unregistered": "Registration ended",
    # Account language switch
    "account.language_changed": "Language changed.",
    # Alerts
    "alerts.title": "Alerts",
    "alerts.one_title": "Alert",
    "alerts.intro": (
        "What the detectors noticed in the audit ledger, one case per account or client "
        "app. Each alert explains itself and cites the ledger entries that show it."
    ),
    "detectors.current": "Detectors are up to date: {n} audit entries judged.",
    "detectors.behind": (
        "Detectors are behind: {n} audit entries wait to be judged, the oldest written "
        "{ago}. Alerts and automatic responses come late."
    ),
    "detectors.idle": (
        "No process is judging the audit ledger now: abnormal access is not being "
        "noticed. Start carevault detect (carevault serve runs it beside its servers)."
    ),
    "alerts.not_running": "Detection is not running on this server.",
    "alerts.filter": "Alerts by state",
    "alerts.status.open": "Open",
    "alerts.status.acknowledged": "Acknowledged",
    "alerts.status.dismissed": "Dismissed",
    "alerts.status.all": "All",
    "alerts.cases": "{n} case(s)",
    "alerts.case_of": "Case of {who}",
    "alerts.open_one": "Alert {id}",
    "alerts.severity": "Severity",
    "alerts.detector": "Detector",
    "alerts.patients": "Patients",
    "alerts.raised": "Raised",
    "alerts.updated": "Last seen",
    "alerts.action": "Automatic response",
    "alerts.state": "State",
    "alerts.none": "No alert in this state.",
    "alerts.back": "Back to the alerts",
    "alerts.heading": "Alert {id}: {detector}",
    "alerts.what": "What was seen",
    "alerts.who": "Who",
    "alerts.address": "From address",
    "alerts.containment_no": "containment {id}",
    "alerts.positions": "Ledger positions",
    "alerts.same_case": "Other alerts in the same case ({n}):",
    "alerts.act": "What to do",
    "alerts.acknowledge": "Acknowledge",
    "alerts.acknowledge_help": "You are looking into it. Recorded with your name.",
    "alerts.dismiss": "Dismiss",
    "alerts.dismiss_help": (
        "It is explained and not a breach. Containment it caused stays until released."
    ),
    "alerts.reason": "Why (recorded in the ledger)",
    "alerts.reason_needed": "Say why the alert is dismissed.",
    "alerts.contain": "Contain",
    "alerts.contain_help": (
        "Suspend {who}: every session and token ends at once. You confirm on the next "
        "page with a fresh code."
    ),
    "alerts.contain_button": "Suspend {who}",
    "alerts.revoke_button": "Revoke the client app {who}",
    "alerts.contained": "{who} is suspended.",
    "alerts.nothing_to_contain": "No account or client app to contain.",
    "alerts.declare": "Declare an incident",
    "alerts.declare_help": (
        "An incident with this case's accounts, client apps, addresses and time window."
    ),
    "alerts.declare_refused": "The incident could not be declared from this alert.",
    "alerts.done.acknowledged": "The alert is acknowledged.",
    "alerts.done.dismissed": "The alert is dismissed.",
    "alerts.evidence": "Evidence in the audit ledger",
    "alerts.resource": "Record type",
    "alerts.more_evidence": "More entries lie in this range: download them all.",
    "alerts.download_evidence": "Download the entries and their proofs (JSON)",
    "alerts.no_evidence": "This alert cites no audit-ledger entry.",
    "alerts.bad_status_title": "No such alert status",
    "alerts.bad_status": "An alert's status is one of open, acknowledged, dismissed "
    "(or all, for every alert).",
    "alerts.unknown_title": "No such alert",
    "alerts.unknown": "There is no alert with this number.",
    "severity.critical": "Critical",
    "severity.high": "High",
    "severity.medium": "Medium",
    "severity.low": "Low",
    "dashboard.no_alerts": "No open alert.",
    "dashboard.to_alerts": "Go to the alerts",
    # Incidents
    "incidents.title": "Incidents",
    "incidents.one_title": "Incident",
    "incidents.intro": (
        "An incident is a time window and what is believed compromised. Declaring and "
        "amending are recorded in the ledger and signed."
    ),
    "incidents.list": "Incidents, newest first",
    "incidents.none": "No incident has been declared.",
    "incidents.open_one": "Incident {id}",
    "incidents.name": "Title",
    "incidents.state": "State",
    "incidents.window": "Window",
    "incidents.declared": "Declared",
    "incidents.now": "now",
    "incidents.status.open": "Open",
    "incidents.status.contained": "Contained",
    "incidents.status.closed": "Closed",
    "incidents.declare": "Declare an incident",
    "incidents.declare_help": "Name at least one thing believed compromised.",
    "incidents.since": "Window starts (group time)",
    "incidents.until": "Window ends (group time)",
    "incidents.until_hint": "Leave empty while it may still be going on.",
    "incidents.compromised": "Believed compromised",
    "incidents.field.accounts": "Staff accounts",
    "incidents.field.accounts_hint": "Usernames, one per line or separated by commas.",
    "incidents.field.clients": "Client apps",
    "incidents.field.clients_hint": "Client ids, one per line or separated by commas.",
    "incidents.field.sessions": "Sessions",
    "incidents.field.addresses": "Source addresses",
    "incidents.field.addresses_hint": "Addresses or ranges, such as 203.0.113.0/24.",
    "incidents.field.clinics": "Clinics",
    "incidents.field.clinics_hint": "Clinic ids, one per line or separated by commas.",
    "incidents.field.database": "The database or a backup",
    "incidents.field.host": "The application host",
    "incidents.field.key_service": "The key service",
    "incidents.invalid": "Not done:",
    "incidents.unknown_title": "No such incident",
    "incidents.unknown": "There is no incident with this number.",
    "incidents.back": "Back to the incidents",
    "incidents.heading": "Incident {id}: {title}",
    "incidents.facts": "The incident",
    "incidents.from_alert": "Declared from",
    "incidents.yes": "yes",
    "incidents.scope": "Open the scope report",
    "incidents.regulators": "Regulators",
    "incidents.regulators_help": (
        "Each report is pre-filled from the scope; whether to notify a regulator is your "
        "decision, recorded with its reason."
    ),
    "incidents.report_pdf": "report (PDF)",
    "incidents.report_json": "report (JSON)",
    "incidents.decide": "Record a decision",
    "incidents.decision_reason": "Reason (at least 10 characters; recorded)",
    "incidents.record_decision": "Record the decision",
    "incidents.decision_refused": "The decision was not recorded:",
    "incidents.timeline": "Timeline",
    "incidents.amend": "Amend",
    "incidents.amend_help": (
        "Widen what is compromised, move the window or change the state. Empty fields "
        "stay as they are. Narrowing the window (a later start, an earlier end) or closing "
        "the incident takes a fresh code from your authenticator."
    ),
    "incidents.amend_code": "Code from your authenticator (to narrow the window or close)",
    "incidents.note": "Finding (recorded with the change)",
    "incidents.done.declared": "The incident is declared.",
    "incidents.done.amended": "The incident is amended.",
    "incidents.done.notices": "The notices are being sent.",
    "incidents.done.decided": "The decision is recorded.",
    "timeline.declared": "Declared",
    "timeline.amended": "Amended",
    "timeline.scoped": "Scope run",
    "timeline.containment-started": "Containment started",
    "timeline.containment-released": "Containment released",
    "regulator.pcpd": "PCPD (Hong Kong)",
    "regulator.hipaa": "HHS (HIPAA)",
    "regulator.gdpr": "EU supervisory authority (GDPR)",
    "decision.notify": "Notify",
    "decision.not-notify": "Do not notify",
    "decision.filed": "Filed",
    "clocks.incident": "Incident",
    "clocks.regulator": "Regulator",
    "clocks.due": "Due",
    "clocks.left": "Time left",
    "clocks.decision": "Decision",
    "clocks.hours_left": "{n} h left",
    "clocks.overdue": "overdue by {n} h",
    "clocks.stopped": "stopped",
    "clocks.none": "No regulator's clock is running.",
    # Notices
    "notices.title": "Notices to the people affected",
    "notices.help": (
        "Each person in the confirmed and decrypted tiers gets one notice, by email, SMS "
        "or letter, in their language. The job can be resumed after any interruption."
    ),
    "notices.not_started": "No notice has been sent for this incident.",
    "notices.start": "Start sending the notices",
    "notices.resume": "Resume sending",
    "notices.running": "Sending…",
    "notices.finished": "Finished {when}.",
    "notices.interrupted": "Interrupted: resume to finish.",
    "notices.stopped": "The job stopped ({error}); resume it.",
    "notices.progress": "Notices handled",
    "notices.done_of": "{done} of {total} handled",
    "notices.state.pending": "Waiting",
    "notices.state.sending": "Being sent",
    "notices.state.sent": "Sent",
    "notices.state.deceased": "Left out: deceased",
    "notices.state.unreachable": "Left out: no way to reach",
    "notices.state.missing": "Left out: no longer on record",
    "notices.channel.email": "By email",
    "notices.channel.sms": "By SMS",
    "notices.channel.letter": "By letter",
    # Scope
    "scope.title": "Scope report",
    "scope.back": "Back to incident {id}",
    "scope.heading": "Scope of incident {id}: {title}",
    "scope.run": "Run {n}",
    "scope.computed": "Computed {when} UTC by {who} ({engine}); kept, and recorded in the ledger.",
    "scope.covers": (
        "It read the audit ledger's first {audit} entries and the unwrap ledger's first "
        "{unwrap} (what they held when it started); its own record is audit entry "
        "{position}."
    ),
    "scope.digest": "SHA-256 of the kept report:",
    "scope.not_latest": "This is an earlier run; the latest is run {n}.",
    "scope.see_latest": "See the latest run.",
    "scope.amended_since": (
        "The incident was amended after this run: its window or what is compromised "
        "differs. Recompute to see the scope as it stands."
    ),
    "scope.newer": "{n} audit entries were appended after this run.",
    "scope.none_newer": "No audit entry was appended after this run.",
    "scope.recompute": "Recompute now",
    "scope.recompute_help": (
        "Computes a new run from the ledgers as they are, keeps it and records it in the "
        "ledger; earlier runs are kept."
    ),
    "scope.recomputed": "Recomputed: this is run {n}.",
    "scope.runs": "Runs of this scope",
    "scope.run_number": "Run",
    "scope.run_when": "Computed (UTC)",
    "scope.run_who": "By",
    "scope.run_covers": "Audit entries read",
    "scope.not_kept": "not kept (recorded before reports were kept)",
    "scope.changed": (
        "{n} people's records were written (made, changed or deleted) by a compromised "
        "principal in the window: check them against a backup. Their notices take no "
        "contact details from those writes."
    ),
    "scope.registered": (
        "{n} people were registered at a clinic, moved to another home or had a "
        "registration ended by a compromised principal in the window: a clinic given them "
        "reaches their records until you review each registration."
    ),
    "scope.notifiable": "{n} people had their data shown or decrypted.",
    "scope.download": "The whole report, for the board:",
    "scope.over_time": "People first exposed, by day",
    "scope.by_clinic": "People by clinic",
    "scope.by_category": "People by data category",
    "scope.day": "Day",
    "scope.clinic": "Clinic",
    "scope.nothing": "Nothing to chart.",
    "scope.lines": "People, with the evidence",
    "scope.tier": "Tier",
    "scope.patient": "Patient record",
    "scope.first": "First exposed (UTC)",
    "scope.evidence": "Evidence",
    "scope.positions": "{n} {ledger} ledger entries, in checkpoint {checkpoint}",
    "scope.more": "{n} more in the downloads.",
    "scope.no_lines": "No one is in scope.",
    "scope.proof": "Signed checkpoints",
    "scope.proof_help": (
        "Every ledger position cited above is in these signed trees; each can be proved "
        "with carevault audit or the standalone verifier."
    ),
    "scope.tree": "tree of {size} entries",
    "scope.refused_title": "No scope",
    "scope.refused": "The scope could not be computed for this incident.",
    "tier.confirmed": "Confirmed",
    "tier.confirmed.means": "Shown to a compromised account or app.",
    "tier.decrypted": "Decrypted",
    "tier.decrypted.means": "Keys unwrapped by a compromised component.",
    "tier.changed": "Changed",
    "tier.registered": "Registered",
    "scope.registered_at": "registered at {clinics}",
    "scope.ended_at": "registration ended at {clinics}",
    "tier.at_rest_only": "At rest only",
    "tier.at_rest_only.means": "An encrypted copy left, without keys.",
    "tier.potentially": "Potentially",
    "tier.potentially.means": "Reachable, with no sign of reading.",
    "alerts.declare_since_hint": (
        "An alert comes after the reads that raised it: by default the window starts a "
        "day before the alert. Move it if you know when it began."
    ),
}
