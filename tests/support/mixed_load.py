"""A mixed clinic load over HTTP against a real server that may be killed at any moment,
and the checks that must hold after every restart.

What each client was told is kept: the ids of acknowledged writes, the transactions
tried (acknowledged or not), and every successful answer with the ledger entry it must
have. The server may die under any of them; a request whose answer never arrived is
simply not counted as acknowledged.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from carevault.bootstrap import build_services
from carevault.config import Settings
from carevault.domain.roles import Role
from carevault.gate import Caller
from tests.support.auth import Login, fresh_code
from tests.support.server import run_cli
from tests.support.staff import TEST_APP, make_staff

CLINIC = "clinic-a"

#: (ledger tag, resource id or type) of a successful answer.
Answer = tuple[str, str]


@dataclass
class Observed:
    """Everything the clients were told, over every life of the server."""

    created: dict[str, str] = field(default_factory=dict)  # id -> family
    transactions_tried: dict[str, bool] = field(default_factory=dict)  # marker -> acked
    answers: Counter[Answer] = field(default_factory=Counter)
    sign_ins: Counter[str] = field(default_factory=Counter)  # "issued" -> tokens received
    statuses: Counter[int] = field(default_factory=Counter)
    containment_changes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self, tag: str, subject: str, status: int) -> None:
        with self.lock:
            self.statuses[status] += 1
            if 200 <= status < 300:
                self.answers[(tag, subject)] += 1


@dataclass(frozen=True)
class Cast:
    """Who works during the load: a front-desk clerk (the load itself), a privacy officer
    (containment), and colleagues who sign in now and then."""

    desk: Login
    officer: Login
    signers: list[Login]
    #: The clerk's token, issued in-process (an hour long): no TOTP code to wait for.
    desk_token: str


def prepare_home(settings: Settings) -> Cast:
    """A data directory with one clinic and its staff, made in-process (seeding the whole
    simulated clinic group costs a minute on a loaded machine)."""
    long_tokens = settings.model_copy(update={"access_token_seconds": 3600})
    services = build_services(long_tokens, create_keys=True, migrate=True)
    try:
        body = {"resourceType": "Organization", "id": CLINIC, "name": "Clinic A"}
        services.fhir.update(
            Caller(principal="system:test"),
            "Organization",
            CLINIC,
            json.dumps(body).encode(),
            "http://127.0.0.1/fhir",
            if_match=None,
            prefer=None,
        )

        def login(role: Role) -> Login:
            return make_staff(services, role, [CLINIC]).login

        desk = make_staff(services, Role.FRONT_DESK, [CLINIC])
        return Cast(
            desk.login,
            login(Role.PRIVACY_OFFICER),
            [login(role) for role in (Role.PHYSICIAN, Role.NURSE, Role.PHYSICIAN, Role.NURSE)],
            desk.token,
        )
    finally:
        services.close()


def sign_in(base: str, login: Login, client: httpx.Client) -> str | None:
    """A token for ``login`` by the direct grant, or None if the server did not answer."""
    form = {
        "grant_type": "password",
        "client_id": TEST_APP,
        "username": login.username,
        "password": login.password,
        "totp": fresh_code(login),
        "scope": "user/*.cruds",
    }
    try:
        response = client.post(f"{base}/auth/token", data=form)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    token: str = response.json()["access_token"]
    return token


class MixedLoad:
    """Workers that read, search, create and post transactions with one clinician's
    token; a thread that signs staff in; a thread that switches containment on and off
    through the CLI. ``stop`` ends them; a dead server ends their requests."""

    def __init__(
        self,
        base: str,
        token: str,
        observed: Observed,
        *,
        seed: int,
        writers: int = 3,
        signers: list[Login] | None = None,
        containment: Callable[[], None] | None = None,
    ) -> None:
        self.base = base
        self.token = token
        self.observed = observed
        self.random = random.Random(seed)
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._work, args=(n, self.random.random()), daemon=True)
            for n in range(writers)
        ]
        if signers:
            self.threads.append(threading.Thread(target=self._sign_ins, args=(signers,)))
        if containment is not None:
            self.threads.append(threading.Thread(target=self._contain, args=(containment,)))
        self.life = f"{seed}"

    def start(self) -> MixedLoad:
        for thread in self.threads:
            thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)

    def _work(self, worker: int, seed: float) -> None:
        chooser = random.Random(seed)
        headers = {"authorization": f"Bearer {self.token}", "content-type": "application/fhir+json"}
        with httpx.Client(base_url=f"{self.base}/fhir", headers=headers, timeout=20) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                try:
                    self._one(client, chooser, f"L{self.life}w{worker}n{n}")
                except httpx.HTTPError:
                    return  # the server is gone: this life is over for this worker

    def _one(self, client: httpx.Client, chooser: random.Random, name: str) -> None:
        observed = self.observed
        kind = chooser.random()
        with observed.lock:
            known = list(observed.created.items())
        if kind < 0.35 or not known:
            body = {"resourceType": "Patient", "name": [{"family": name}], "gender": "female"}
            response = client.post("/Patient", content=json.dumps(body))
            if response.status_code == 201:
                created = response.json()["id"]
                with observed.lock:
                    observed.created[created] = name
                observed.answered("fhir:resource:create", created, 201)
            else:
                observed.answered("fhir:resource:create", "?", response.status_code)
        elif kind < 0.6:
            resource_id, _ = chooser.choice(known)
            response = client.get(f"/Patient/{resource_id}")
            observed.answered("fhir:resource:read", resource_id, response.status_code)
        elif kind < 0.8:
            _, family = chooser.choice(known)
            response = client.get("/Patient", params={"family": family})
            observed.answered("fhir:resource:search", "Patient", response.status_code)
        else:
            with observed.lock:
                observed.transactions_tried[name] = False
            bundle = {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "fullUrl": f"urn:uuid:00000000-0000-4000-8000-00000000000{k}",
                        "resource": {"resourceType": "Patient", "name": [{"family": name}]},
                        "request": {"method": "POST", "url": "Patient"},
                    }
                    for k in range(2)
                ],
            }
            response = client.post("", content=json.dumps(bundle))
            if response.status_code == 200:
                ids = [
                    entry["response"]["location"].split("/")[1]
                    for entry in response.json()["entry"]
                ]
                with observed.lock:
                    observed.transactions_tried[name] = True
                    for created in ids:
                        observed.created[created] = name
                for created in ids:
                    observed.answered("fhir:resource:create", created, 201)
            else:
                observed.answered("fhir:bundle:transaction", name, response.status_code)

    def _sign_ins(self, logins: list[Login]) -> None:
        with httpx.Client(timeout=20) as client:
            n = 0
            while not self.stop.wait(3.0):
                login = logins[n % len(logins)]
                n += 1
                token = sign_in(self.base, login, client)
                if token is None:
                    continue
                with self.observed.lock:
                    self.observed.sign_ins["issued"] += 1

    def _contain(self, change: Callable[[], None]) -> None:
        # One switch on and off per life (each is two CLI processes, seconds apiece).
        if not self.stop.wait(0.5):
            change()
            with self.observed.lock:
                self.observed.containment_changes += 1


def containment_switch(env: dict[str, str], officer: Login) -> Callable[[], None]:
    """Blocks and releases a documentation address range through ``carevault contain``
    (a process of its own, as an officer on the host would): each change is a ledger
    entry and a checkpoint, whether or not the server is alive."""

    def change() -> None:
        started = run_cli(
            env,
            "contain",
            "start",
            "block-address",
            "--target",
            "198.51.100.0/24",
            "--reason",
            "drill",
            "--officer",
            officer.username,
            "--totp",
            fresh_code(officer),
        )
        if started.returncode != 0 or "#" not in started.stdout:
            return
        number = started.stdout.split("#", 1)[1].split(":", 1)[0]
        run_cli(
            env,
            "contain",
            "release",
            number,
            "--reason",
            "drill over",
            "--officer",
            officer.username,
            "--totp",
            fresh_code(officer),
        )

    return change


def ledger_answers(entries: list[bytes]) -> tuple[Counter[Answer], Counter[str]]:
    """What the ledger says was answered: (tag, subject) of successful FHIR accesses, and
    how many tokens were issued (``tokens["issued"]``)."""
    answers: Counter[Answer] = Counter()
    tokens: Counter[str] = Counter()
    for data in entries:
        document = json.loads(data)
        if document.get("outcome") != "success":
            continue
        tag = document["tag"]
        if tag == "fhir:resource:search":
            answers[(tag, document.get("resource_type", ""))] += 1
        elif tag.startswith("fhir:resource:"):
            answers[(tag, document.get("resource_id", ""))] += 1
        elif tag == "auth:token:issued":
            tokens["issued"] += 1
    return answers, tokens


def token(base: str, login: Login) -> str:
    with httpx.Client(timeout=60) as client:
        issued = sign_in(base, login, client)
    assert issued is not None, f"{login.username} could not sign in"
    return issued


def wait_until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""
