"""The flow picture (``blinker_events.flow``): the causal trees of the
history, and their SVG (parsed here with xml.etree: its nodes, edges and
labels) and Mermaid (compared exactly) renderings."""

from __future__ import annotations

import itertools
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from blinker_events import DeliveryReport, Event, EventBus, lowlevel
from blinker_events.flow import COLOURS, FlowEvent, duration_text, to_mermaid, to_svg, trees

from .conftest import BusFactory

SVG = "{http://www.w3.org/2000/svg}"


def _nodes(svg: str) -> list[tuple[str, list[str]]]:
    """``(data-kind, its text lines)`` of every box, in document order."""
    root = ET.fromstring(svg)
    return [(g.get("data-kind", ""), [t.text or "" for t in g.iter(f"{SVG}text")]) for g in root.iter(f"{SVG}g")]


def _edges(svg: str) -> list[tuple[str, str]]:
    """``(first line of the parent box, first line of the child box)`` of every edge."""
    root = ET.fromstring(svg)
    first = {g.get("id"): (g.find(f"{SVG}text").text or "") for g in root.iter(f"{SVG}g")}  # type: ignore[union-attr]
    return [(first[p.get("data-from")], first[p.get("data-to")]) for p in root.iter(f"{SVG}path")]


def _rects(svg: str) -> list[tuple[float, float, float, float]]:
    root = ET.fromstring(svg)
    return [
        tuple(float(r.get(a, "0")) for a in ("x", "y", "width", "height"))  # type: ignore[misc]
        for r in root.iter(f"{SVG}rect")
    ]


def _shop(bus: EventBus) -> None:
    """order.created -> reserve (publishes stock.reserved -> audit) and crm (fails)."""

    def reserve(event: Event) -> None:
        bus.publish_sync(Event("stock.reserved", {"order": event.data["id"]}, "warehouse"))

    def crm(event: Event) -> None:
        raise ConnectionError("CRM down")

    def audit(event: Event) -> None:
        pass

    bus.subscribe("order.created", reserve)
    bus.subscribe("order.created", crm)
    bus.subscribe("stock.reserved", audit)
    bus.publish_sync(Event("order.created", {"id": 1}, "/orders"))


def _timed(reports: list[DeliveryReport], seconds: float = 0.0123) -> list[DeliveryReport]:
    for report in reports:
        report.duration = seconds  # a known duration, so labels compare exactly
    return reports


def test_each_event_hangs_from_the_receiver_that_published_it(bus: EventBus) -> None:
    _shop(bus)
    (root,) = trees(bus)
    assert (root.event.event_type, root.orphan, root.unattributed) == ("order.created", False, ())
    reserve, crm = root.receivers
    assert (reserve.subscription.name.rsplit(".", 1)[-1], reserve.outcome, reserve.detail) == (
        "reserve",
        "succeeded",
        "",
    )
    assert (crm.outcome, crm.detail, crm.children) == ("failed", "ConnectionError", ())
    (stock,) = reserve.children
    assert stock.event.event_type == "stock.reserved"
    assert stock.event.parent_id == root.event.event_id
    ((audit),) = stock.receivers
    assert (audit.outcome, audit.children) == ("succeeded", ())


def test_the_svg_has_a_box_per_event_and_receiver_and_an_edge_per_link(bus: EventBus) -> None:
    _shop(bus)
    svg = to_svg(_timed(bus.get_delivery_reports()))
    assert _nodes(svg) == [
        ("event", ["order.created", "from '/orders'", "12.3 ms"]),
        ("succeeded", ["reserve", "ok"]),
        ("event", ["stock.reserved", "from 'warehouse'", "12.3 ms"]),
        ("succeeded", ["audit", "ok"]),
        ("failed", ["crm", "failed: ConnectionError"]),
    ]
    assert _edges(svg) == [
        ("order.created", "reserve"),
        ("reserve", "stock.reserved"),
        ("stock.reserved", "audit"),
        ("order.created", "crm"),
    ]
    root = ET.fromstring(svg)
    fills = {g.get("data-kind"): g.find(f"{SVG}rect").get("fill") for g in root.iter(f"{SVG}g")}  # type: ignore[union-attr]
    assert fills == {kind: COLOURS[kind][0] for kind in ("event", "succeeded", "failed")}
    assert root.find(f"{SVG}title").text == "Event flow"  # type: ignore[union-attr]


def test_the_mermaid_text_is_exactly_the_tree(bus: EventBus) -> None:
    _shop(bus)
    assert to_mermaid(_timed(bus.get_delivery_reports())) == (
        "flowchart LR\n"
        "    n1[\"order.created<br/>from '/orders'<br/>12.3 ms\"]\n"
        '    n1 --> n2["reserve<br/>ok"]\n'
        "    n2 --> n3[\"stock.reserved<br/>from 'warehouse'<br/>12.3 ms\"]\n"
        '    n3 --> n4["audit<br/>ok"]\n'
        '    n1 --> n5["crm<br/>failed: ConnectionError"]\n'
        "    classDef event fill:#e8f0fe,stroke:#1a56db,color:#202124\n"
        "    class n1,n3 event\n"
        "    classDef succeeded fill:#e6f4ea,stroke:#1e7e34,color:#202124\n"
        "    class n2,n4 succeeded\n"
        "    classDef failed fill:#fdecea,stroke:#c62828,color:#202124\n"
        "    class n5 failed\n"
    )


def test_durations_are_written_in_the_unit_that_fits() -> None:
    assert [duration_text(s) for s in (0.0, 0.00085, 0.0009996, 0.0123, 0.9999, 0.99996, 2.5)] == [
        "0 \u00b5s",
        "850 \u00b5s",
        "1.0 ms",
        "12.3 ms",
        "999.9 ms",
        "1.00 s",
        "2.50 s",
    ]


def test_an_event_whose_parent_is_not_in_the_history_is_a_root_marked_as_such(bus: EventBus) -> None:
    _shop(bus)
    child, _parent = bus.get_delivery_reports()  # the child finished first
    (root,) = trees([child])
    assert (root.event.event_type, root.orphan) == ("stock.reserved", True)
    assert _nodes(to_svg(_timed([child])))[0] == (
        "event",
        ["stock.reserved", "from 'warehouse'", "12.3 ms, parent not in history"],
    )


def test_an_event_made_outside_its_parents_receivers_hangs_from_the_event(bus: EventBus) -> None:
    bus.subscribe("order.created", lambda event: None)
    parent = Event("order.created")
    bus.publish_sync(parent)
    payload = Event("order.shipped").to_dict()
    bus.publish_sync(Event.from_dict({**payload, "parent_id": parent.event_id}))  # as if from another process
    (root,) = trees(bus)
    assert root.event is parent
    (unattributed,) = root.unattributed
    assert unattributed.event.event_type == "order.shipped"
    assert root.receivers[0].children == ()
    assert _edges(to_svg(bus)) == [("order.created", "<lambda>"), ("order.created", "order.shipped")]


def test_parent_links_that_loop_are_cut_and_nothing_is_lost(bus: EventBus) -> None:
    a, b = Event("a").to_dict(), Event("b").to_dict()
    first = Event.from_dict({**a, "parent_id": b["event_id"]})
    second = Event.from_dict({**b, "parent_id": a["event_id"]})
    bus.publish_sync(first)
    bus.publish_sync(second)
    (root,) = trees(bus)
    assert root.event is first
    assert [child.event for child in root.unattributed] == [second]
    assert root.unattributed[0].unattributed == ()  # the loop is cut where it closes
    assert [kind for kind, _ in _nodes(to_svg(bus))] == ["event", "event"]


def test_every_outcome_is_said_in_words_and_coloured(new_bus: BusFactory) -> None:
    bus = new_bus(failure_threshold=1, slow_after=0.05)

    def slow(event: Event) -> None:
        time.sleep(0.3)

    def timed(event: Event) -> None:
        time.sleep(0.2)

    def again(event: Event) -> None:
        bus.publish_sync(Event("loop"))  # the cycle guard stops its second run

    def broken(event: Event) -> None:
        raise ValueError("bad")

    bus.subscribe("slow", slow)
    bus.subscribe("timed", timed, timeout=0.05)
    bus.subscribe("loop", again)
    bus.subscribe("broken", broken)
    for name in ("slow", "timed", "loop", "broken", "broken"):
        bus.publish_sync(Event(name))
    nodes = _nodes(to_svg(_timed(bus.get_delivery_reports(), 2.5)))
    assert [(kind, lines[-1]) for kind, lines in nodes if kind != "event"] == [
        ("succeeded", "ok, slow"),
        ("timed_out", "timed out, slow, disabled"),  # a timeout counts as a failure
        ("succeeded", "ok"),  # the outer run of again, then its own event's
        ("skipped", "skipped: cycle"),
        ("failed", "failed: ValueError, disabled"),
        ("skipped", "skipped: disabled"),
    ]
    assert [lines[-1] for kind, lines in nodes if kind == "event"] == ["2.50 s"] * 8  # two are SUBSCRIBER_DISABLED


def test_the_svg_is_self_contained(bus: EventBus) -> None:
    _shop(bus)
    svg = to_svg(bus)
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    tags = {element.tag.removeprefix(SVG) for element in root.iter()}
    assert tags == {"svg", "title", "g", "rect", "text", "path"}  # no script, image, link, foreignObject, style
    attributes = {name for element in root.iter() for name in element.attrib}
    assert not {name for name in attributes if "href" in name or name.startswith("on")}
    assert "url(" not in svg
    assert "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_hostile_labels_are_escaped_described_and_cut(bus: EventBus) -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    def receiver(event: Event) -> None:
        pass

    receiver.__qualname__ = 'x"><script>alert(1)</script>'
    script = "</svg><script>alert('&')</script>"
    bus.subscribe(script, receiver)
    bus.publish_sync(Event(script, source=Hostile()))
    bus.publish_sync(Event("big", source="y" * 1_000_000))
    svg = to_svg(_timed(bus.get_delivery_reports()))
    root = ET.fromstring(svg)  # still one well-formed document
    assert {element.tag.removeprefix(SVG) for element in root.iter()} == {"svg", "title", "g", "rect", "text", "path"}
    nodes = _nodes(svg)
    assert nodes[0][1][0] == "</svg><script>alert('&')</script>"
    assert nodes[0][1][1].startswith("from <Hostile instance at 0x")  # described: its __repr__ raised
    assert nodes[1][1] == ['x"><script>alert(1)</script>', "ok"]
    assert nodes[2][1][1] == "from '" + "y" * 27 + "\u2026"  # one line of 34
    assert len(svg) < 10_000
    assert "<script" not in svg  # the text is escaped: &lt;script


def test_mermaid_labels_cannot_break_out(bus: EventBus) -> None:
    bus.publish_sync(Event('a"]; click n1 "x" #1 <b>&`', source=None))
    assert to_mermaid(_timed(bus.get_delivery_reports())) == (
        "flowchart LR\n"
        '    n1["a#quot;]; click n1 #quot;x#quot; #35;1 #lt;b#gt;#amp;#96;<br/>12.3 ms"]\n'
        "    classDef event fill:#e8f0fe,stroke:#1a56db,color:#202124\n"
        "    class n1 event\n"
    )


def test_mermaid_labels_cannot_start_a_directive(bus: EventBus) -> None:
    """Mermaid reads ``%%{init: ...}%%`` anywhere, inside a label too: an
    event type of that shape restyled the page."""
    bus.publish_sync(Event("%%{init:{'theme':'dark'}}%%"))
    assert to_mermaid(_timed(bus.get_delivery_reports())) == (
        "flowchart LR\n"
        "    n1[\"#37;#37;#123;init:#123;'theme':'dark'#125;#125;#37;#37;<br/>12.3 ms\"]\n"
        "    classDef event fill:#e8f0fe,stroke:#1a56db,color:#202124\n"
        "    class n1 event\n"
    )


def test_a_huge_history_is_cut_at_max_nodes_with_a_visible_note(new_bus: BusFactory) -> None:
    bus = new_bus(history_size=500)
    bus.subscribe("tick", lambda event: None)
    for _ in range(400):
        bus.publish_sync(Event("tick"))
    nodes = _nodes(to_svg(bus, max_nodes=301))
    assert len(nodes) == 302
    assert nodes[-1] == ("note", ["499 more node(s) not shown", "(max_nodes=301)"])
    assert [kind for kind, _ in nodes[:4]] == ["event", "succeeded", "event", "succeeded"]
    assert to_mermaid(bus, max_nodes=2).endswith(
        '    n3["798 more node(s) not shown<br/>(max_nodes=2)"]\n'
        "    classDef event fill:#e8f0fe,stroke:#1a56db,color:#202124\n"
        "    class n1 event\n"
        "    classDef succeeded fill:#e6f4ea,stroke:#1e7e34,color:#202124\n"
        "    class n2 succeeded\n"
        "    classDef note fill:#ffffff,stroke:#9e9e9e,color:#202124\n"
        "    class n3 note\n"
    )
    assert len(_nodes(to_svg(bus))) == 301  # the default: 300 and the note


def test_deep_and_wide_trees_are_laid_out_without_overlap(new_bus: BusFactory) -> None:
    bus = new_bus(max_depth=16)

    def deeper(event: Event) -> None:
        if event.data["n"] < 6:
            bus.publish_sync(Event("deep", {"n": event.data["n"] + 1}))

    def fan_out(event: Event) -> None:
        for n in range(12):
            bus.publish_sync(Event("leaf", {"n": n}))

    bus.subscribe("deep", deeper, reentrant=True)
    bus.subscribe("wide", fan_out)
    bus.subscribe("leaf", lambda event: None)
    bus.subscribe("leaf", lambda event: None)
    bus.publish_sync(Event("deep", {"n": 0}))
    bus.publish_sync(Event("wide"))
    svg = to_svg(bus)
    rects = _rects(svg)
    assert len(rects) == 14 + 2 + 12 * 3
    for (x1, y1, w1, h1), (x2, y2, w2, h2) in itertools.combinations(rects, 2):
        assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1, "boxes overlap"
    root = ET.fromstring(svg)
    width, height = float(root.get("width", "0")), float(root.get("height", "0"))
    assert all(x >= 0 and y >= 0 and x + w <= width and y + h <= height for x, y, w, h in rects)
    assert max(x for x, _, _, _ in rects) == 24 + 13 * (240 + 48)  # 7 events and 7 receivers deep


def test_trees_take_a_bus_or_reports_and_refuse_anything_else(bus: EventBus) -> None:
    _shop(bus)
    assert [t.event for t in trees(bus)] == [t.event for t in trees(iter(bus.get_delivery_reports()))]
    with pytest.raises(TypeError, match="source must be an EventBus or an iterable of DeliveryReport, not int"):
        trees(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="source must be an EventBus or an iterable of DeliveryReport, not str"):
        to_svg("history")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="source must hold DeliveryReport objects only, not Event"):
        to_mermaid([Event("x")])  # type: ignore[list-item]
    for bad in (0, -1, True, 2.0, "3"):
        with pytest.raises(ValueError, match="max_nodes must be an int of at least 1"):
            to_svg(bus, max_nodes=bad)  # type: ignore[arg-type]


def test_an_empty_history_is_a_note_saying_so(bus: EventBus) -> None:
    assert trees(bus) == []
    assert _nodes(to_svg(bus)) == [("note", ["nothing published yet"])]
    assert to_mermaid([]) == (
        "flowchart LR\n"
        '    n1["nothing published yet"]\n'
        "    classDef note fill:#ffffff,stroke:#9e9e9e,color:#202124\n"
        "    class n1 note\n"
    )


def test_rendering_while_many_threads_publish_nested_flows(new_bus: BusFactory) -> None:
    bus = new_bus(history_size=10_000)
    bus.subscribe("order", lambda event: bus.publish_sync(Event("stock", source=event.data["n"])))
    bus.subscribe("stock", lambda event: None)
    errors: list[BaseException] = []
    stop = threading.Event()

    def render() -> None:
        while not stop.is_set():
            try:
                ET.fromstring(to_svg(bus))
                to_mermaid(bus)
            except BaseException as exc:
                errors.append(exc)
                return

    def publish(start: int) -> None:
        for n in range(start, start + 50):
            bus.publish_sync(Event("order", {"n": n}))

    renderer = threading.Thread(target=render)
    renderer.start()
    publishers = [threading.Thread(target=publish, args=(k * 50,)) for k in range(6)]
    for thread in publishers:
        thread.start()
    for thread in publishers:
        thread.join(30)
    stop.set()
    renderer.join(30)
    assert errors == []
    roots = trees(bus)
    assert len(roots) == 300
    assert all(len(r.receivers) == 1 and len(r.receivers[0].children) == 1 for r in roots)
    assert sorted(r.receivers[0].children[0].event.source for r in roots) == list(range(300))


def test_flow_classes_live_in_the_public_module() -> None:
    from blinker_events import flow

    assert FlowEvent.__module__ == flow.FlowReceiver.__module__ == "blinker_events.flow"
    assert set(flow.__all__) == {
        "COLOURS",
        "MAX_NODES",
        "OUTCOMES",
        "FlowEvent",
        "FlowReceiver",
        "duration_text",
        "to_mermaid",
        "to_svg",
        "trees",
    }
    assert lowlevel.published_by(Event("x")) is None


def test_the_picture_on_the_docs_page_is_a_real_rendering_of_its_program() -> None:
    from pathlib import Path

    svg = (Path(__file__).resolve().parent.parent / "docs" / "_static" / "event-flow.svg").read_text()
    assert [(kind, lines if kind != "event" else lines[:-1]) for kind, lines in _nodes(svg)] == [
        ("event", ["order.created", "from '/orders'"]),
        ("succeeded", ["reserve_stock", "ok"]),
        ("event", ["stock.reserved", "from 'warehouse'"]),
        ("succeeded", ["check_restock", "ok"]),
        ("timed_out", ["notify_customer", "timed out, slow"]),
        ("failed", ["sync_to_crm", "failed: ConnectionError"]),
    ]
    assert _edges(svg) == [
        ("order.created", "reserve_stock"),
        ("reserve_stock", "stock.reserved"),
        ("stock.reserved", "check_restock"),
        ("order.created", "notify_customer"),
        ("order.created", "sync_to_crm"),
    ]


def test_characters_xml_cannot_hold_are_replaced_not_fatal(bus: EventBus) -> None:
    bus.publish_sync(Event("bad\x00\x07name\ud800", source="\x1b[31mred"))
    svg = to_svg(_timed(bus.get_delivery_reports()))
    assert _nodes(svg) == [("event", ["bad\ufffd\ufffdname\ufffd", "from '\\x1b[31mred'", "12.3 ms"])]
    assert svg.encode("utf-8")  # no lone surrogate left to fail the encoding
    assert '"bad\ufffd\ufffdname\ufffd<br/>' in to_mermaid(bus)
