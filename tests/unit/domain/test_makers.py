"""Who stands behind care a client app wrote (``domain.makers``): a client's write
explains every read as before, but a VIP read asks for a person's word."""

from __future__ import annotations

from carevault.domain.care import Opened, Window
from carevault.domain.makers import (
    CLIENT_ALONE,
    CLIENT_AND,
    attribute_marked,
    broad,
    client_only,
    marked_as_client,
)

DOCTOR, OTHER_LOGIN, DESK, KIOSK, PORTAL = b"dr", b"dr2", b"desk", b"kiosk", b"portal"
WINDOW = Window("clinic-a", None, 0, 100)


def _whom(window: Window) -> str:
    return str(window.clinic_id)


def _version(
    writer: bytes | None,
    earlier: bytes | None | tuple[()] = (),
    *,
    client: bool = False,
    mine: frozenset[bytes] = frozenset(),
) -> bytes | None:
    """The maker a version by ``writer`` stores, over a first version by ``earlier``
    (``()``: this is the first version)."""
    before = None if earlier == () else (Opened(earlier, 0, 100, "clinic-a"),)
    [(_, maker)] = attribute_marked(
        (WINDOW,),
        writer,
        before,
        50,
        _whom,
        client=client,
        mine=mine,  # type: ignore[arg-type]
    )
    return maker


def test_a_client_booking_alone_is_its_own_and_explains_no_vip_read() -> None:
    made = _version(KIOSK, client=True)
    assert made == CLIENT_ALONE + KIOSK
    assert broad(made) == KIOSK  # one other principal alone, as before
    assert client_only(made, {DOCTOR}) and client_only(made, {DESK})


def test_a_client_writing_a_doctors_own_booking_again_corroborates_it_for_all_but_vip() -> None:
    made = _version(KIOSK, DOCTOR, client=True)
    assert made == CLIENT_AND + DOCTOR
    assert broad(made) is None  # corroborated, as before: it explains every detector
    assert client_only(made, {DOCTOR, OTHER_LOGIN})
    assert not client_only(made, {DESK})  # the doctor's word explains a colleague's look
    again = _version(KIOSK, made, client=True)
    assert again == CLIENT_AND + DOCTOR  # written again and again, still no one else's


def test_a_doctor_writing_a_clients_booking_again_vouches_for_no_one_but_others() -> None:
    made = _version(DOCTOR, CLIENT_ALONE + KIOSK)
    assert made == CLIENT_AND + DOCTOR
    assert client_only(made, {DOCTOR}) and not client_only(made, {DESK})
    assert _version(DOCTOR, CLIENT_AND + DOCTOR) == CLIENT_AND + DOCTOR
    # With another login of their own: still them.
    assert _version(DOCTOR, CLIENT_AND + OTHER_LOGIN, mine=frozenset({OTHER_LOGIN})) == (
        CLIENT_AND + DOCTOR
    )


def test_another_persons_word_makes_it_the_clinics_care() -> None:
    assert _version(DESK, CLIENT_AND + DOCTOR) is None
    assert _version(KIOSK, None, client=True) is None
    assert _version(DOCTOR, None) is None
    assert _version(DOCTOR, CLIENT_AND + DESK) is None


def test_a_second_client_is_no_person_either() -> None:
    made = _version(PORTAL, CLIENT_ALONE + KIOSK, client=True)
    assert made == CLIENT_ALONE + PORTAL


def test_staff_care_keeps_its_meaning() -> None:
    assert _version(DOCTOR) == DOCTOR
    assert _version(DESK, DOCTOR) is None
    assert _version(DOCTOR, OTHER_LOGIN, mine=frozenset({OTHER_LOGIN})) == DOCTOR
    assert _version(None, DOCTOR) is None  # the system
    assert broad(DOCTOR) == DOCTOR and not client_only(DOCTOR, {DOCTOR})
    assert broad(None) is None and not client_only(None, {DOCTOR})


def test_a_token_beginning_with_any_byte_is_no_mark() -> None:
    # A one-byte mark would take one staff token in 128 for a client's: their own
    # care would then explain their reads.
    for first in range(256):
        token = bytes([first]) + b"\x5a" * 31
        assert broad(token) == token and not client_only(token, {token})
        assert _version(token) == token


def test_a_clients_plain_token_from_before_the_marks_is_marked_as_the_clients_alone() -> None:
    """Stop 66: care stored before stop 65 holds a client's plain token; marked, it
    explains no VIP read (as care the client wrote now), and every other read as before."""
    clients = frozenset({KIOSK, PORTAL})
    marked = marked_as_client(KIOSK, clients)
    assert marked == CLIENT_ALONE + KIOSK
    assert client_only(marked, frozenset({DOCTOR}))
    assert broad(marked) == KIOSK
    assert marked_as_client(PORTAL, clients) == CLIENT_ALONE + PORTAL


def test_what_is_not_a_clients_plain_token_is_left_as_it_is() -> None:
    """Staff's care, the system's or corroborated care (None: a person and a client
    together were stored so, and cannot be told apart), and care already marked."""
    clients = frozenset({KIOSK, PORTAL})
    for maker in (
        None,
        DOCTOR,
        DESK,
        CLIENT_ALONE + KIOSK,
        CLIENT_AND + DOCTOR,
        CLIENT_AND + KIOSK,
        KIOSK + b"x",
        b"",
    ):
        assert marked_as_client(maker, clients) is None, maker
    assert marked_as_client(KIOSK, frozenset()) is None


def test_a_marked_token_is_never_marked_twice() -> None:
    """Idempotent: what a mark makes is nothing to mark, even were the marked token
    itself taken for a client's (a second pass changes nothing)."""
    clients = frozenset({KIOSK})
    once = marked_as_client(KIOSK, clients)
    assert once is not None
    assert marked_as_client(once, clients | {once}) is None
