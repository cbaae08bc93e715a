"""A ``requests`` adapter that answers from an in-process test client: fhirclient's
``FHIRServer`` (a ``requests.Session``) then talks to the app as it talks to a server,
following its links with its own pager, without a server process."""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from starlette.testclient import TestClient


class InProcess(BaseAdapter):
    def __init__(self, client: TestClient) -> None:
        super().__init__()
        self.client = client

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        answered = self.client.request(
            request.method or "GET",
            request.url or "",
            headers=dict(request.headers),
            content=request.body,
        )
        response = requests.Response()
        response.status_code = answered.status_code
        response.headers = CaseInsensitiveDict(answered.headers)
        response._content = answered.content
        response.url = request.url or ""
        response.request = request
        response.encoding = "utf-8"
        return response

    def close(self) -> None:
        pass


def mounted(session: requests.Session, client: TestClient) -> None:
    """Send every request of ``session`` to the test server to ``client``."""
    session.mount("http://testserver/", InProcess(client))
