"""Who stands behind care a client app wrote: the marks a relationship's maker carries.

Care a person made alone explains none of their own accesses until someone else writes
a version of it (``domain.care.made_by``). A client app (a kiosk, the online booking
portal, a feed) is someone else for that, and must stay so: a booking the portal made, or
a doctor's own booking the kiosk checked in, explains the doctor's reads (the breadth of
a clinic's day is app-booked). But a client's secret is a file on a server, not a
person: one insider holding a doctor's login and any client secret that may write
bookings was their own second account, and their read of a VIP raised nothing
(adversary round 82). A VIP's record asks for a person's word.

So a relationship's maker (``care_relationship.granted_by``) says, besides who alone
made it, whether only a client's writes stand behind it (``client_only``):

- ``CLIENT_ALONE`` and the client's token: a client app's writes alone made it (it booked
  the patient, or wrote again what another client made). It explains everyone's reads
  as care another principal made alone does; a VIP read it explains is still judged.
- ``CLIENT_AND`` and a person's token: that person's writes and a client's made it (the
  kiosk checked in the doctor's own booking; the doctor wrote the portal's booking
  again). It explains every read as care someone else corroborated does, but that
  person's read of a VIP is still judged: no one else vouched for it.

Anything a person (or the system) wrote besides those vouches as before: the desk
checking in the portal's booking makes it the clinic's care. Pure: tokens are bytes the
caller computed (``CareRelationships.maker``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import replace

from carevault.domain.care import Opened, Window, attribute

#: The marks, before the token: long enough that no token (16 bytes of HMAC,
#: ``vault.blind.TOKEN_BYTES``) begins with one by chance (2^-96 or less), where a byte
#: would mark one token in 128.
CLIENT_ALONE = b"\x00client-alone\x00"
CLIENT_AND = b"\x00client-and\x00"
#: Who a client's people-view names when no person stands behind the care.
_NO_PERSON = b""


def client_only(maker: bytes | None, mine: Collection[bytes]) -> bool:
    """Whether only a client's writes, and the reader's own (``mine``: their person's
    tokens), stand behind care of ``maker``: it explains none of their VIP reads."""
    if maker is None:
        return False
    if maker.startswith(CLIENT_ALONE):
        return True
    return maker.startswith(CLIENT_AND) and maker.removeprefix(CLIENT_AND) in mine


def marked_as_client(maker: bytes | None, clients: Collection[bytes]) -> bytes | None:
    """The maker care stored before the marks (stop 65) carries from now on, if a client
    app's writes alone made it: ``maker`` is then a client's plain token (``clients``: the
    ``maker`` tokens of every client app registered, revoked or not), and becomes
    ``CLIENT_ALONE`` and that token (stop 66). None where nothing changes: care the
    system made or two principals corroborated (None: a person and a client among them
    too, which the old rows cannot tell apart), a person's token, a maker already marked."""
    if maker is None or maker.startswith((CLIENT_ALONE, CLIENT_AND)) or maker not in clients:
        return None
    return CLIENT_ALONE + maker


def broad(maker: bytes | None) -> bytes | None:
    """``maker`` as every detector but ``vip`` reads it (as before the marks): a client
    alone is one principal alone; a person and a client, corroborated care."""
    if maker is None or maker.startswith(CLIENT_AND):
        return None
    return maker.removeprefix(CLIENT_ALONE)


def _person(
    maker: bytes | None, writer: bytes, client: bool, mine: Collection[bytes]
) -> bytes | None:
    """Which person alone stands behind an earlier relationship of ``maker``, as the
    writer's version sees it: the writer (``mine``: their own person's tokens), another
    person, None (two people or the system), or ``_NO_PERSON`` (clients only). A client's
    care is no one's word: for a member of staff writing it again, it is their own."""
    if maker is None:
        return None
    if maker.startswith(CLIENT_ALONE):
        return _NO_PERSON if client else writer
    person = maker.removeprefix(CLIENT_AND)
    return writer if person in mine else person


def attribute_marked(
    windows: Sequence[Window],
    writer: bytes | None,
    earlier: Collection[Opened[bytes]] | None,
    moment_us: int,
    whom: Callable[[Window], Hashable],
    *,
    client: bool = False,
    mine: Collection[bytes] = (),
) -> tuple[tuple[Window, bytes | None], ...]:
    """``domain.care.attribute`` with the marks: who alone made each relationship a
    version opens (as before, for every detector), marked where only a client's writes
    (``client``: the writer is a client app) and at most one person's stand behind it.
    ``mine``: the tokens of the writer's person (their other logins are them)."""
    if writer is None:
        return tuple((window, None) for window in windows)
    own = frozenset(mine) | {writer}
    plain = (
        None
        if earlier is None
        else tuple(
            replace(o, maker=writer if broad(o.maker) in own else broad(o.maker)) for o in earlier
        )
    )
    made: list[tuple[Window, bytes | None]] = []
    for window, maker in attribute(windows, writer, plain, moment_us, whom):
        if maker is not None:
            made.append((window, CLIENT_ALONE + maker if client else maker))
            continue
        key = whom(window)
        people = {
            _person(o.maker, writer, client, own)
            for o in earlier or ()
            if o.whom == key and o.covers(moment_us)
        }
        made.append((window, _vouched(people, writer, client)))
    return tuple(made)


def _vouched(people: set[bytes | None], writer: bytes, client: bool) -> bytes | None:
    """The maker of care the version continues, from the people behind what it
    continues: None if someone other than the writer (or the system) vouched for it."""
    others = sorted(p for p in people if p is not None and p not in (writer, _NO_PERSON))
    if None in people:
        return None
    if not client:
        return None if others else CLIENT_AND + writer
    if len(others) != 1:
        # Two people's care, or none but clients' (then the client's own).
        return None if others else CLIENT_ALONE + writer
    return CLIENT_AND + others[0]
