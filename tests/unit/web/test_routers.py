from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.testclient import TestClient

from carevault.web.routers import SERVING, App, include


def who() -> str:
    return "the real caller"


router = APIRouter()


@router.get("/whoami")
def whoami(caller: str = Depends(who)) -> dict[str, str]:
    return {"caller": caller}


def test_apps_share_the_prepared_routes_and_keep_their_own_overrides() -> None:
    overridden, plain = App(), App()
    include(overridden, router)
    include(plain, router)
    overridden.dependency_overrides[who] = lambda: "a stand-in"

    with TestClient(overridden) as first, TestClient(plain) as second:
        answers = [
            first.get("/whoami").json()["caller"],
            second.get("/whoami").json()["caller"],
            first.get("/whoami").json()["caller"],
        ]

    assert answers == ["a stand-in", "the real caller", "a stand-in"]
    # Prepared once: both apps serve the same route objects.
    assert overridden.router.routes[-1] is plain.router.routes[-1]
    # Outside a request no app's overrides apply.
    assert SERVING.dependency_overrides == {}


def test_routers_are_served_in_the_order_given() -> None:
    first, second = APIRouter(), APIRouter()

    @first.get("/same")
    def from_first() -> str:
        return "first"

    @second.get("/same")
    def from_second() -> str:
        return "second"

    app = App()
    include(app, first, second)
    other = App()
    include(other, second, first)

    with TestClient(app) as one, TestClient(other) as two:
        assert (one.get("/same").json(), two.get("/same").json()) == ("first", "second")
