"""The flow as pictures: SVG and Mermaid text of the trees of
:mod:`._model` (see :mod:`blinker_events.flow`)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from xml.sax.saxutils import escape

from blinker_events import DeliveryReport, EventBus, event_type_name, lowlevel

from ._model import FlowEvent, FlowReceiver, trees

__all__ = ["COLOURS", "MAX_NODES", "duration_text", "to_mermaid", "to_svg"]

#: The most nodes a picture shows unless told otherwise.
MAX_NODES = 300
#: The longest line of a label, in characters; the whole text is in the node's tooltip.
LINE = 34


# -- a renderer-neutral tree of boxes ---------------------------------------------


@dataclasses.dataclass(slots=True)
class _Box:
    kind: str  # "event", one of OUTCOMES, or "note"
    lines: list[str]
    title: str
    children: list[_Box]


_SAID = {
    "succeeded": "ok",
    "failed": "failed",
    "timed_out": "timed out",
    "cancelled": "cancelled",
    "skipped": "skipped",
    "scheduled": "still running",
}


def duration_text(seconds: float) -> str:
    """How a picture writes a duration: ``"850 µs"``, ``"12.3 ms"``, ``"2.50 s"``
    (the unit chosen after rounding: 0.99996 s is ``"1.00 s"``)."""
    if round(seconds * 1e6) < 1000:
        return f"{seconds * 1e6:.0f} \u00b5s"
    if round(seconds * 1e3, 1) < 1000:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


#: What XML 1.0 cannot hold (control characters, lone surrogates, U+FFFE/F):
#: a name holding one must not make the whole picture unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _cut(text: str, limit: int = LINE) -> str:
    text = _NOT_XML.sub("\ufffd", " ".join(text.split()))  # one line, whatever the name holds
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _event_box(node: FlowEvent) -> _Box:
    """The box of one event, its children not yet filled in."""
    event = node.event
    name = event_type_name(event.event_type)
    notes = [duration_text(node.report.duration)]
    if node.orphan:
        notes.append("parent not in history")
    if node.report.handed_off:
        notes.append("handed off")
    lines = [_cut(name)]
    if event.source is not None:
        lines.append(_cut("from " + lowlevel.describe(event.source, 200)))
    lines.append(_cut(", ".join(notes)))
    return _Box("event", lines, f"{_cut(name, 200)} ({event.event_id}): {', '.join(notes)}", [])


def _receiver_box(receiver: FlowReceiver) -> _Box:
    """The box of one receiver, its children not yet filled in."""
    said = _SAID[receiver.outcome] + (f": {receiver.detail}" if receiver.detail else "")
    said = ", ".join([said, *(flag for flag, on in (("slow", receiver.slow), ("disabled", receiver.disabled)) if on)])
    name = receiver.subscription.name
    return _Box(receiver.outcome, [_cut(name.rsplit(".", 1)[-1]), _cut(said)], f"{_cut(name, 200)}: {said}", [])


def _to_boxes(roots: list[FlowEvent]) -> list[_Box]:
    """The boxes of the trees, children in order (iterative: a history can
    hold a chain deeper than Python's recursion)."""
    top: list[_Box] = []
    stack: list[tuple[FlowEvent | FlowReceiver, list[_Box]]] = [(root, top) for root in reversed(roots)]
    while stack:
        node, into = stack.pop()
        if isinstance(node, FlowEvent):
            box = _event_box(node)
            kids: list[FlowEvent | FlowReceiver] = [*node.receivers, *node.unattributed]
        else:
            box = _receiver_box(node)
            kids = list(node.children)
        into.append(box)
        stack.extend((kid, box.children) for kid in reversed(kids))
    return top


def _walk(roots: list[_Box]) -> Iterator[tuple[_Box, int, _Box | None]]:
    """``(box, depth, parent)`` of every box, depth first, in order."""
    stack: list[tuple[_Box, int, _Box | None]] = [(root, 0, None) for root in reversed(roots)]
    while stack:
        box, depth, parent = stack.pop()
        yield box, depth, parent
        stack.extend((child, depth + 1, box) for child in reversed(box.children))


def _boxes(source: EventBus | Iterable[DeliveryReport], max_nodes: object) -> list[_Box]:
    """The boxes to draw, at most ``max_nodes`` (in depth-first order), and
    a note box last saying how many were left out."""
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise ValueError(f"max_nodes must be an int of at least 1, not {lowlevel.describe(max_nodes)}")
    roots = _to_boxes(trees(source))
    kept = 0
    left = 0
    stack = list(reversed(roots))
    keep: list[_Box] = []
    while stack:
        box = stack.pop()
        if kept < max_nodes:
            kept += 1
            keep.append(box)
            stack.extend(reversed(box.children))
        else:
            left += 1
            stack.extend(box.children)
    kept_ids = {id(box) for box in keep}
    for box in keep:
        box.children = [child for child in box.children if id(child) in kept_ids]
    roots = [box for box in roots if id(box) in kept_ids]
    if left:
        lines = [f"{left} more node(s) not shown", f"(max_nodes={max_nodes})"]
        roots.append(_Box("note", lines, " ".join(lines), []))
    return roots or [_Box("note", ["nothing published yet"], "nothing published yet", [])]


# -- SVG -----------------------------------------------------------------------------

#: Fill and stroke per kind of box: text labels say the same, colour is a help.
COLOURS = {
    "event": ("#e8f0fe", "#1a56db"),
    "succeeded": ("#e6f4ea", "#1e7e34"),
    "failed": ("#fdecea", "#c62828"),
    "timed_out": ("#fff4e5", "#e65100"),
    "cancelled": ("#eeeeee", "#616161"),
    "skipped": ("#f3e8fd", "#6a1b9a"),
    "scheduled": ("#e0f7fa", "#00838f"),
    "note": ("#ffffff", "#9e9e9e"),
}
_W, _GAP_X, _LINE_H, _PAD, _GAP_Y = 240, 48, 15, 8, 12


def _height(box: _Box) -> float:
    return len(box.lines) * _LINE_H + 2 * _PAD


def to_svg(
    source: EventBus | Iterable[DeliveryReport], *, max_nodes: int = MAX_NODES, title: str = "Event flow"
) -> str:
    """The causal trees of ``source`` (as :func:`trees` takes it) as one SVG
    document: trees left to right (event, its receivers, their events...),
    one below the other, boxes never overlapping however deep or wide.

    Each box is a ``<g>`` with ``data-kind`` (``event``, an outcome of
    :data:`OUTCOMES`, or ``note``) and an ``id``; each edge a ``<path>`` with
    ``data-from`` and ``data-to`` naming them. Labels are cut to a line
    (the whole label is the box's ``<title>``, its tooltip) and
    XML-escaped; there is no script, style sheet reference or link, so the
    string can be inlined into an HTML page as it is. An empty history
    gives a picture (and :func:`to_mermaid` a chart) of one note saying so.

    :param max_nodes: the most boxes drawn; a note box says how many more there were.
    :param title: the picture's ``<title>``, for screen readers.
    :raises TypeError: a bad ``source``.
    :raises ValueError: ``max_nodes`` is not an int of at least 1.
    """
    roots = _boxes(source, max_nodes)
    # Every leaf gets a row of its own, as tall as the tallest box; a parent
    # is centred on its first and last child. A subtree so stays within the
    # band of its leaves' rows, and bands do not overlap: nor do boxes.
    order = list(_walk(roots))
    row = max(_height(box) for box, _, _ in order) + _GAP_Y
    centre: dict[int, float] = {}
    top = _GAP_Y / 2
    previous_root: _Box | None = None
    for box, _, parent in order:
        if parent is None and previous_root is not None:
            top += _GAP_Y  # a little more room between trees
        if parent is None:
            previous_root = box
        if not box.children:
            centre[id(box)] = top + row / 2
            top += row
    for box, _, _ in reversed(order):  # children before their parents
        if box.children:
            centre[id(box)] = (centre[id(box.children[0])] + centre[id(box.children[-1])]) / 2
    ident = {id(box): f"flow-n{n}" for n, (box, _, _) in enumerate(order, 1)}
    placed = [
        (ident[id(box)], box, _GAP_X / 2 + depth * (_W + _GAP_X), centre[id(box)] - _height(box) / 2, _height(box))
        for box, depth, _ in order
    ]
    edges = [(ident[id(parent)], ident[id(box)]) for box, _, parent in order if parent is not None]
    width = max(x for _, _, x, _, _ in placed) + _W + _GAP_X / 2
    full_height = top + _GAP_Y / 2
    where = {name: (x, y, h) for name, _, x, y, h in placed}
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="blinker-events-flow" role="img" '
        f'width="{width:.0f}" height="{full_height:.0f}" viewBox="0 0 {width:.0f} {full_height:.0f}" '
        f'font-family="sans-serif" font-size="12">',
        f"<title>{escape(_cut(title, 200))}</title>",
    ]
    for start, end in edges:
        px, py, ph = where[start]
        cx, cy, ch = where[end]
        x1, y1, x2, y2 = px + _W, py + ph / 2, cx, cy + ch / 2
        mid = (x1 + x2) / 2
        out.append(
            f'<path data-from="{start}" data-to="{end}" fill="none" stroke="#888" stroke-width="1.2" '
            f'd="M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"/>'
        )
    for name, box, x, y, h in placed:
        fill, stroke = COLOURS[box.kind]
        dash = ' stroke-dasharray="4 3"' if box.kind == "note" else ""
        out.append(f'<g id="{name}" data-kind="{box.kind}">')
        out.append(f"<title>{escape(box.title)}</title>")
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{_W}" height="{h:.1f}" rx="6" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="1.5"{dash}/>'
        )
        for n, line in enumerate(box.lines):
            weight = ' font-weight="bold"' if n == 0 else ""
            out.append(
                f'<text x="{x + _PAD:.1f}" y="{y + _PAD + (n + 1) * _LINE_H - 3:.1f}" fill="#202124"{weight}>'
                f"{escape(line)}</text>"
            )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


# -- Mermaid -------------------------------------------------------------------------


def _mermaid_text(text: str) -> str:
    """``text`` for inside a quoted Mermaid label: its entity codes for what
    Mermaid (or the HTML it renders into) would read as syntax."""
    text = text.replace("#", "#35;")  # first: the codes below start with one
    # Mermaid reads a directive (``%%{init: ...}%%``) wherever it stands, even
    # inside a quoted label: hence % { and } too.
    for char, code in _MERMAID_CODES:
        text = text.replace(char, code)
    return text


_MERMAID_CODES = (
    ('"', "#quot;"),
    ("<", "#lt;"),
    (">", "#gt;"),
    ("&", "#amp;"),
    ("`", "#96;"),
    ("%", "#37;"),
    ("{", "#123;"),
    ("}", "#125;"),
)


def to_mermaid(source: EventBus | Iterable[DeliveryReport], *, max_nodes: int = MAX_NODES) -> str:
    """The causal trees of ``source`` (as :func:`trees` takes it) as a
    Mermaid ``flowchart LR``: a node per box of :func:`to_svg` (ids ``n1``,
    ``n2``... in depth-first order), its label's lines joined by ``<br/>``,
    each label escaped with Mermaid's entity codes (``#quot;``, ``#lt;``...)
    so no text can end a label or start a directive; an edge per link; a
    ``classDef`` per kind with the SVG's colours.

    :raises TypeError: a bad ``source``.
    :raises ValueError: ``max_nodes`` is not an int of at least 1.
    """
    roots = _boxes(source, max_nodes)
    lines = ["flowchart LR"]
    kinds: dict[str, list[str]] = {}
    counter = iter(range(1, 1 << 62))
    stack: list[tuple[_Box, str | None]] = [(root, None) for root in reversed(roots)]
    while stack:
        box, parent = stack.pop()
        ident = f"n{next(counter)}"
        label = "<br/>".join(_mermaid_text(line) for line in box.lines)
        lines.append(f'    {ident}["{label}"]' if parent is None else f'    {parent} --> {ident}["{label}"]')
        kinds.setdefault(box.kind, []).append(ident)
        stack.extend((child, ident) for child in reversed(box.children))
    for kind, (fill, stroke) in COLOURS.items():
        if kind in kinds:
            lines.append(f"    classDef {kind} fill:{fill},stroke:{stroke},color:#202124")
            lines.append(f"    class {','.join(kinds[kind])} {kind}")
    return "\n".join(lines) + "\n"
