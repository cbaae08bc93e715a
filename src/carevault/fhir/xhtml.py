"""What a narrative's XHTML (the ``xhtml`` type: ``Narrative.div``) may hold.

R4 (datatypes.html#xhtml, narrative.html#xhtml, invariants txt-1 and txt-2): one ``div``
in the XHTML namespace, holding only HTML 4.0's basic formatting elements and
attributes, links, images and style attributes; no head, body, scripts, forms,
base/link/xlink, frames, iframes, objects, external stylesheets or event attributes
(``on*``); and some text or an image. An app renders ``text.div`` as R4 means it to,
so whatever active content is stored here runs in every reader's browser: the rule is
an allow-list (R4's own), and a few things R4's lists let through but a browser would
run or fetch are refused as well: ``javascript:``-like links, ``url()`` and
``expression()`` in styles, CDATA sections and comments an HTML parser reads otherwise
than an XML one does.

Parsing: the standard library's expat, as XML, with no DTD. A document type
declaration, an entity declaration or a processing instruction stops the parse where
it starts, so no entity is ever expanded and nothing is ever fetched; an entity other
than XML's five (HTML's ``&nbsp;``, which R4 says to write as a character) is not
well-formed. Problems name the rule, never the content.
"""

from __future__ import annotations

import re
from typing import Any
from xml.parsers import expat

XHTML_NAMESPACE = "http://www.w3.org/1999/xhtml"
_XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"

#: txt-1's elements (R4 Narrative.div, its XPath).
ELEMENTS = frozenset(
    [
        "a",
        "abbr",
        "acronym",
        "b",
        "big",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "col",
        "colgroup",
        "dd",
        "dfn",
        "div",
        "dl",
        "dt",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "li",
        "ol",
        "p",
        "pre",
        "q",
        "samp",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "tt",
        "ul",
        "var",
    ]
)
#: txt-1's attributes, and ``xml:lang``/``xml:space``, which say only how text reads.
ATTRIBUTES = frozenset(
    [
        "abbr",
        "accesskey",
        "align",
        "alt",
        "axis",
        "bgcolor",
        "border",
        "cellhalign",
        "cellpadding",
        "cellspacing",
        "cellvalign",
        "char",
        "charoff",
        "charset",
        "cite",
        "class",
        "colspan",
        "compact",
        "coords",
        "dir",
        "frame",
        "headers",
        "height",
        "href",
        "hreflang",
        "hspace",
        "id",
        "lang",
        "longdesc",
        "name",
        "nowrap",
        "rel",
        "rev",
        "rowspan",
        "rules",
        "scope",
        "shape",
        "span",
        "src",
        "start",
        "style",
        "summary",
        "tabindex",
        "title",
        "type",
        "valign",
        "value",
        "vspace",
        "width",
    ]
)
_XML_ATTRIBUTES = frozenset({"lang", "space"})
#: Elements a refusal names (what R4 lists as forbidden, and their kin): any other
#: element is "an element", so a refusal never repeats what was sent.
_NAMED = frozenset(
    [
        "script",
        "noscript",
        "style",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "param",
        "form",
        "input",
        "button",
        "select",
        "textarea",
        "head",
        "body",
        "html",
        "base",
        "link",
        "meta",
        "title",
        "svg",
        "math",
        "template",
    ]
)
#: Attributes whose value a browser follows as a URL.
_LINKS = frozenset({"href", "src", "cite", "longdesc"})
#: The images a narrative may carry in itself.
_DATA_IMAGES = tuple(f"data:image/{kind}" for kind in ("png", "jpeg", "gif", "webp"))
#: URL schemes a browser runs rather than fetches.
_ACTIVE_SCHEMES = ("javascript:", "vbscript:", "livescript:", "mocha:")
#: The references an image may be besides a ``data:`` one: a contained resource
#: (``#id``) or a Binary of this server (``Binary/id``), each by a FHIR id that is not
#: all dots (``Binary/..`` is the parent directory to a browser, not a record).
_C0_AND_SPACE = "".join(map(chr, range(0x21)))
_TAB_AND_NEWLINES = str.maketrans("", "", "\t\n\r")
_LOCAL_IMAGE = re.compile(r"(?:#|Binary/)(?!\.+$)[A-Za-z0-9\-.]{1,64}")
#: What a style attribute may not hold: CSS that runs, binds or fetches, and escapes
#: (``\\75 rl(`` is ``url(``) that would hide either.
_ACTIVE_STYLE = ("\\", "url(", "image(", "image-set(", "expression(", "behavior", "binding", "@")


class _Refused(Exception):
    """Why the XHTML is refused (rule words only)."""


def problem(value: str) -> str | None:
    """Why ``value`` is not a narrative R4 allows, or None. The reason never quotes it."""
    if not value.lstrip().startswith("<div"):
        return 'must be an XHTML div (<div xmlns="http://www.w3.org/1999/xhtml">...</div>)'
    check = _Check()
    parser = expat.ParserCreate(encoding="utf-8", namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    for handler, refusal in _REFUSALS.items():
        setattr(parser, handler, refusal)
    parser.CommentHandler = check.comment
    parser.StartElementHandler = check.start
    parser.CharacterDataHandler = check.text
    try:
        parser.Parse(value.encode("utf-8", "surrogatepass"), True)
    except _Refused as refused:
        return str(refused)
    except (expat.ExpatError, UnicodeError, ValueError):
        return "is not well-formed XHTML (HTML entities such as &nbsp; are written as characters)"
    if not check.content:
        return "txt-2: the narrative has no text and no image"
    return None


def _refuse(what: str) -> Any:
    def handler(*_: Any) -> None:
        raise _Refused(f"may not hold {what}")

    return handler


#: What stops the parse where it starts: nothing declared is ever expanded or fetched.
_REFUSALS = {
    "StartDoctypeDeclHandler": _refuse("a document type declaration"),
    "EntityDeclHandler": _refuse("an entity declaration"),
    "ExternalEntityRefHandler": _refuse("an external entity"),
    "ProcessingInstructionHandler": _refuse("a processing instruction"),
    "XmlDeclHandler": _refuse("an XML declaration"),
    "StartCdataSectionHandler": _refuse("a CDATA section"),
}


class _Check:
    """The element and attribute rules, as expat reports each start tag."""

    def __init__(self) -> None:
        self.root_seen = False
        self.content = False

    def start(self, name: str, attributes: dict[str, str]) -> None:
        namespace, _, local = name.rpartition(" ")
        if namespace != XHTML_NAMESPACE:
            raise _Refused("must be XHTML: every element in the XHTML namespace")
        if not self.root_seen:
            self.root_seen = True
            if local != "div":
                raise _Refused("must be an XHTML div")
        if local not in ELEMENTS:
            shown = f"the element {local}" if local in _NAMED else "an element"
            raise _Refused(
                f"txt-1: may not hold {shown} (no scripts, forms, frames, iframes, objects, "
                "head, body, base or link: only HTML's formatting elements)"
            )
        for key, text in attributes.items():
            space, _, attribute = key.rpartition(" ")
            if space == _XML_NAMESPACE and attribute in _XML_ATTRIBUTES:
                continue
            if space or attribute not in ATTRIBUTES:
                shown = "an event attribute (on...)" if attribute[:2] == "on" else "an attribute"
                raise _Refused(
                    f"txt-1: may not hold {shown} (no event handlers, no xlink: only "
                    "HTML's formatting attributes)"
                )
            if attribute in _LINKS and _active_link(text, image=local == "img"):
                if local == "img":
                    raise _Refused(
                        "may not hold an image but a data: PNG, JPEG, GIF or WebP, a "
                        "contained resource (#id) or a Binary of this server (Binary/id)"
                    )
                raise _Refused(
                    f"may not hold a link ({attribute}) that runs script or opens a document"
                )
            if attribute == "style" and _active_style(text):
                raise _Refused("may not hold a style that runs, binds or fetches anything")
        if local == "img" and attributes.get("src"):
            self.content = True

    def text(self, data: str) -> None:
        if not self.content and data.strip():
            self.content = True

    def comment(self, data: str) -> None:
        # ``<!-->`` and ``<!--->`` end a comment early in HTML, not in XML: what followed
        # would be markup to a browser that XML called a comment.
        if "<" in data or ">" in data:
            raise _Refused("may not hold a comment with markup in it")


def _squeezed(text: str) -> str:
    """``text`` as a browser reads a URL or a style: case and the characters it skips
    (spaces, tabs, line ends, controls) taken out."""
    return "".join(ch for ch in text if ch > " ").lower()


def _active_link(text: str, *, image: bool) -> bool:
    """Whether a link runs script, or, for an image, fetches from anywhere a writer
    chooses: an image loads as the narrative is shown, so one on another server is a
    tracking pixel telling it who read which record, and when (the review of integrator
    round 72). An image is a ``data:`` PNG, JPEG, GIF or WebP, or a reference within the
    record or this server (``#id``, ``Binary/x``); a link the reader follows may go
    anywhere that runs nothing."""
    squeezed = _squeezed(text)
    if squeezed.startswith(_ACTIVE_SCHEMES):
        return True
    if image:
        if squeezed.startswith(_DATA_IMAGES):
            return False
        # Only those shapes (adversary round 75): any other relative URL (``/auth/x``,
        # ``../x``, ``track?pid=1``) was fetched, with the reader's cookies, from the
        # origin that shows the narrative, on a path and query the writer chose. Read as
        # a browser reads it (WHATWG URL): controls and spaces trimmed from both ends,
        # tabs and line breaks dropped anywhere; a space inside is part of the URL.
        url = text.strip(_C0_AND_SPACE).translate(_TAB_AND_NEWLINES)
        return _LOCAL_IMAGE.fullmatch(url) is None
    # A data: document opened by a link may run.
    return squeezed.startswith("data:")


def _active_style(text: str) -> bool:
    squeezed = _squeezed(text)
    return any(marker in squeezed for marker in _ACTIVE_STYLE)
