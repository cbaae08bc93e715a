"""``GET /verify``: anyone may check that a notice's code is genuine.

The answer says whether the code belongs to a notice we sent, by which channel and on
which day, and nothing about the patient; past ``CAREVAULT_NOTIFY_CODE_DAYS`` after that
day, that it has expired. Given also the email address or mobile number
the message came to (``to``), it says whether the notice was sent there: a genuine code
pasted into a phishing message sent to someone else is then told apart
(``notify.verify``). Rate-limited per address, per IPv6 /48 and
for everyone together (429 with ``Retry-After``), in the database so every server
process shares the limits; every check is a ledger entry, every refusal is counted in
the ledger's per-minute summaries. HTML in English or Chinese (``lang``, or the
browser's ``Accept-Language``), or JSON for ``Accept: application/json``. The page and
its answers carry the console's security headers (``carevault.web.headers``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, Request
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from carevault.bootstrap import Services
from carevault.clock import from_micros
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.notify.limits import SharedBuckets
from carevault.notify.service import sender_of, verifier_of
from carevault.notify.verify import Verdict, Verifier
from carevault.notify.wording import CHANNEL_WORDS, day
from carevault.web.headers import SecurityHeaders
from carevault.web.responses import request_id_of
from carevault.web.routers import include
from carevault.web.security import client_address

router = APIRouter()
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

TEXT = {
    "en": {
        "title": "Check a notice",
        "intro": "Type the code printed in the notice you received, and the email address "
        "or mobile number the message came to.",
        "label": "Verification code",
        "to_label": "Email address or mobile number the message came to (optional)",
        "button": "Check",
        "genuine": "Genuine. This code belongs to a notice that {group} sent by {channel} "
        "on {date}. To be sure the message you have is that notice, check again with the "
        "email address or mobile number it came to.",
        "genuine_to": "Genuine. This code belongs to the notice that {group} sent to this "
        "address ({address}) by {channel} on {date}. If {address} is not yours, the message "
        "you have is not for you: do not reply to it, and call our hotline {hotline}.",
        "genuine_by_post": "Genuine. This code belongs to a letter that {group} sent by post "
        "on {date}.",
        "elsewhere": "Not sent to you. This code belongs to a notice we sent to someone "
        "else, not to the address you typed (check that it is the one on the message's "
        "“To” line). If a message to you gave you this code, it is not from us: do not "
        "reply to it, do not open its links, and call our hotline {hotline}.",
        "addresses_spent": "Genuine. This code belongs to a notice that {group} sent by "
        "{channel} on {date}. It has been checked with too many different addresses today, "
        "so we do not say whether it was sent to the one you typed: call our hotline "
        "{hotline}, or try again tomorrow.",
        "expired": "Expired. This code belongs to a notice that {group} sent on {date}, and "
        "it is no longer in use. A message that gives you this code now is not a new notice "
        "from us: do not reply to it, do not open its links, and call our hotline {hotline}.",
        "not_genuine": "Not recognised. This code does not belong to any notice we sent. "
        "If a message gave you this code, do not reply to it, do not open its links, and "
        "call our hotline {hotline}.",
        "malformed": "A code has 12 letters and digits, such as K7MX-3HPA-RT9W. Please "
        "check what you typed.",
        "never": "We never ask for passwords, identity card numbers or payment by email, "
        "text message or phone.",
        "busy": "Too many checks. Please wait a minute and try again, or call {hotline}.",
        "other": "中文",
        "other_lang": "zh",
    },
    "zh": {
        "title": "核實通知",
        "intro": "請輸入閣下所收到通知上印有的核實碼，以及接收該訊息的電郵地址或手機號碼。",
        "label": "核實碼",
        "to_label": "接收該訊息的電郵地址或手機號碼（可選填）",
        "button": "核實",
        "genuine": "真確。此核實碼屬於{group}於{date}以{channel}發出的通知。"
        "如要確定閣下手上的訊息正是該通知，請連同接收該訊息的電郵地址或手機號碼再核實一次。",
        "genuine_to": "真確。此核實碼屬於{group}於{date}以{channel}"
        "發送至此地址（{address}）的通知。"
        "如 {address} 並非閣下的地址，閣下手上的訊息並非發給閣下："
        "請勿回覆，並致電我們的熱線 {hotline}。",
        "genuine_by_post": "真確。此核實碼屬於{group}於{date}以郵寄發出的信件。",
        "elsewhere": "並非發給閣下。此核實碼屬於我們發給另一人的通知，而非發送至閣下輸入的地址"
        "（請確認該地址與訊息「收件人」一欄相同）。"
        "如有訊息向閣下提供此核實碼，該訊息並非由我們發出：請勿回覆，亦不要開啟其中的連結，"
        "並致電我們的熱線 {hotline}。",
        "addresses_spent": "真確。此核實碼屬於{group}於{date}以{channel}發出的通知。"
        "今日已有太多不同地址以此核實碼核實，因此我們不會說明該通知是否發送至閣下輸入的地址："
        "請致電我們的熱線 {hotline}，或明天再試。",
        "expired": "已失效。此核實碼屬於{group}於{date}發出的通知，現已停止使用。"
        "如現在有訊息向閣下提供此核實碼，該訊息並非我們發出的新通知：請勿回覆，"
        "亦不要開啟其中的連結，並致電我們的熱線 {hotline}。",
        "not_genuine": "無法確認。此核實碼不屬於我們發出的任何通知。如有訊息向閣下提供此核實碼，"
        "請勿回覆，亦不要開啟其中的連結，並致電我們的熱線 {hotline}。",
        "malformed": "核實碼由12個英文字母及數字組成，例如 K7MX-3HPA-RT9W。請檢查輸入是否正確。",
        "never": "我們絕不會以電郵、短訊或電話要求閣下提供密碼、身份證號碼或付款。",
        "busy": "核實次數過多，請稍候一分鐘再試，或致電 {hotline}。",
        "other": "English",
        "other_lang": "en",
    },
}


@dataclass
class VerifyPage:
    verifier: Verifier
    #: Per address and for everyone, shared by every server process (the database).
    limits: SharedBuckets
    services: Services


def install(app: FastAPI, services: Services) -> None:
    settings = services.settings
    per_minute = settings.notify_verify_per_minute
    per_network = settings.notify_verify_per_network_per_minute
    everyone = settings.notify_verify_global_per_second
    buckets = SharedBuckets(
        services.engine,
        services.now_us,
        per_address=(per_minute / 60.0, max(1, int(per_minute))),
        per_network=(per_network / 60.0, max(1, int(per_network))),
        everyone=(everyone, max(1, int(everyone * 2))),
    )
    app.state.verify_page = VerifyPage(verifier_of(services, per_code=buckets), buckets, services)
    # The console's headers (CSP with frame-ancestors 'none', X-Frame-Options DENY,
    # nosniff, no referrer): a framed or sniffed /verify is a phisher's tool.
    app.add_middleware(SecurityHeaders, prefix="/verify")
    include(app, router)


def _language(request: Request) -> str:
    chosen = request.query_params.get("lang") or ""
    if not chosen:
        chosen = request.headers.get("accept-language", "")[:2]
    return "zh" if chosen.lower().startswith("zh") else "en"


@router.get("/verify", include_in_schema=False)
async def verify(request: Request) -> Response:
    page: VerifyPage = request.app.state.verify_page
    language = _language(request)
    wants_json = "application/json" in request.headers.get("accept", "")
    # An empty or blank code (a script's ``?code=$CODE`` with nothing in it) is no code:
    # answered as none, never "not genuine", and no check is made.
    code = (request.query_params.get("code") or "").strip()
    # The address the message came to, if given (an email address is at most 254
    # characters; anything longer is no address of ours).
    to = (request.query_params.get("to") or "").strip()[:320] or None
    # An address weighs only when the reader typed it into this page: a phisher's link
    # carrying their own genuine code and the address it went to (``?code=…&to=…``)
    # was answered "genuine, sent to this address", the answer ``to`` exists to deny
    # them. A browser says where a navigation came from (Fetch Metadata): only a form
    # of this origin is typed here; a link from a message, a web mail or another site
    # is answered as a code without an address, and recorded as such.
    address_from_link = to is not None and _from_elsewhere(request)
    if address_from_link:
        to = None
    headers = {"cache-control": "no-store", "content-language": language}
    settings = page.services.settings
    words = {"group": sender_of(settings).name(language), "hotline": settings.notify_hotline}
    if not code:
        if wants_json:
            return JSONResponse({"error": "give ?code="}, status_code=400, headers=headers)
        return _page(request, language, None, words, headers)
    source = client_address(request) or "unknown"
    wait = await run_in_threadpool(page.limits.take, source)
    if wait:
        event = AuditEvent(
            tag=Tag.NOTIFY_CODE_CHECKED,
            outcome=Outcome.DENIED,
            at_us=page.services.now_us(),
            request_id=request_id_of(request.scope),
            source_address=source,
            reason="verification rate limit",
        )
        await run_in_threadpool(page.services.refusals.refuse, event)
        headers["retry-after"] = str(wait)
        if wants_json:
            return JSONResponse({"error": "too many checks"}, status_code=429, headers=headers)
        return _page(request, language, "busy", words, headers, status=429)
    verdict: Verdict = await run_in_threadpool(
        page.verifier.check,
        code[:64],
        source,
        request.headers.get("user-agent"),
        to,
        address_from_link=address_from_link,
    )
    zone = ZoneInfo(settings.timezone)
    sent_day = day(from_micros(verdict.sent_us), language, zone) if verdict.sent_us else None
    if wants_json:
        answer: dict[str, object] = {
            # An expired code vouches for nothing now: a script that reads ``genuine``
            # alone tells its user not to trust the message (fail safe; the review of
            # stop 64), and ``expired`` says why.
            "genuine": verdict.genuine and not verdict.expired,
            "channel": verdict.channel,
            "sent_on": from_micros(verdict.sent_us).astimezone(zone).date().isoformat()
            if verdict.sent_us
            else None,
        }
        if to or address_from_link:
            # Only when an address was given: ``?code=`` alone keeps its three keys.
            answer["sent_to_address"] = verdict.sent_to_address
        if verdict.expired:
            # Only for a code past its days; every other answer is as it was.
            answer["expired"] = True
        return JSONResponse(answer, headers=headers)
    if verdict.genuine:
        words["channel"] = CHANNEL_WORDS[language].get(verdict.channel or "", "")
        words["date"] = sent_day or ""
        words["address"] = verdict.address or ""
        return _page(request, language, _genuine(verdict, to), words, headers, to=to)
    key = "not_genuine" if verdict.well_formed else "malformed"
    return _page(request, language, key, words, headers, to=to)


def _from_elsewhere(request: Request) -> bool:
    """Whether a browser says this request was not made from a page of this origin
    (``Sec-Fetch-Site``: ``cross-site``, ``same-site``, or ``none`` for a link opened
    from a mail program or typed into the address bar). A client that sends no Fetch
    Metadata (a script, ``curl``) typed what it sent."""
    site = request.headers.get("sec-fetch-site")
    return site is not None and site.strip().lower() != "same-origin"


def _genuine(verdict: Verdict, to: str | None) -> str:
    """Which answer a genuine code gets: one past its days is expired, whatever its
    channel or the address given; a letter's is what it is (its address is not kept); a
    message's says whether it went to the address given, or asks for it."""
    if verdict.expired:
        return "expired"
    if verdict.channel == "letter":
        return "genuine_by_post"
    if verdict.address_limited:
        return "addresses_spent"
    if verdict.sent_to_address is None:
        return "genuine"
    return "genuine_to" if verdict.sent_to_address else "elsewhere"


def _page(
    request: Request,
    language: str,
    outcome: str | None,
    words: dict[str, str],
    headers: dict[str, str],
    status: int = 200,
    to: str | None = None,
) -> Response:
    text = TEXT[language]
    message = text[outcome].format(**words) if outcome else None
    return templates.TemplateResponse(
        request,
        "verify.html",
        {
            "t": text,
            "lang": language,
            "outcome": outcome,
            "message": message,
            # Shown back in the form (escaped) so that a second check needs no retyping.
            "to": to or "",
            **words,
        },
        status_code=status,
        headers=headers,
    )
