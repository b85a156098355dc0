"""The flow as data: the causal trees of delivery reports (see :mod:`blinker_events.flow`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

from blinker_events import DeliveryReport, Event, EventBus, Subscription, lowlevel

__all__ = ["OUTCOMES", "FlowEvent", "FlowReceiver", "trees"]

#: A receiver's outcome in a flow, as its report lists it.
OUTCOMES = ("succeeded", "failed", "timed_out", "cancelled", "skipped", "scheduled")


@dataclasses.dataclass(frozen=True, slots=True)
class FlowReceiver:
    """A receiver of an event in a flow.

    ``outcome`` is one of :data:`OUTCOMES`; ``detail`` says more where there
    is more (the exception's type for ``failed``, the reason for
    ``skipped``), else ``""``. ``slow``: it ran past ``slow_after``;
    ``disabled``: this publish disabled it. ``children``: the events it
    published while handling this one, in the order they finished."""

    subscription: Subscription
    outcome: str
    detail: str
    slow: bool
    disabled: bool
    children: tuple[FlowEvent, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class FlowEvent:
    """An event in a flow: its ``report``, its ``receivers`` in subscription
    order, ``orphan`` (its ``parent_id`` names an event missing from the
    reports), and ``unattributed``: events it caused whose publishing
    receiver is unknown."""

    report: DeliveryReport
    receivers: tuple[FlowReceiver, ...]
    orphan: bool
    unattributed: tuple[FlowEvent, ...]

    @property
    def event(self) -> Event:
        return self.report.event


FlowReceiver.__module__ = FlowEvent.__module__ = "blinker_events.flow"  # where users import them


def trees(source: EventBus | Iterable[DeliveryReport]) -> list[FlowEvent]:
    """The causal trees of ``source`` -- a bus (its history) or delivery
    reports (oldest first, as the history gives them) -- in the order their
    roots' publishes finished.

    An event published more than once is drawn where its first report is;
    its later reports become roots of their own. Parent links that loop
    (possible only between events rebuilt with ``Event.from_dict``) are cut
    where the loop closes, that event becoming a root.

    :raises TypeError: ``source`` is neither a bus nor an iterable of
        :class:`~blinker_events.DeliveryReport`.
    """
    reports = _reports(source)
    first: dict[str, int] = {}
    for index, report in enumerate(reports):
        first.setdefault(report.event.event_id, index)
    # parent index -> subscription id (None: unknown) -> child indexes
    children: dict[int, dict[int | None, list[int]]] = {}
    roots: list[int] = []
    for index, report in enumerate(reports):
        parent = first.get(report.event.parent_id) if report.event.parent_id is not None else None
        if parent is None or parent == index or first[report.event.event_id] != index:
            roots.append(index)
        else:
            children.setdefault(parent, {}).setdefault(lowlevel.published_by(report.event), []).append(index)
    built: dict[int, FlowEvent] = {}
    reachable = _reachable(roots, children)
    for index in range(len(reports)):  # a loop of parents: not reachable from any root
        if index not in reachable:
            roots.append(index)
            reachable |= _reachable([index], children, reachable)
    roots.sort()
    for index in _post_order(roots, children):
        built[index] = _build(index, reports, children, built, first)
    return [built[index] for index in roots]


def _reports(source: object) -> list[DeliveryReport]:
    if isinstance(source, EventBus):
        return source.get_delivery_reports()
    if isinstance(source, (str, bytes)) or not isinstance(source, Iterable):
        raise TypeError(f"source must be an EventBus or an iterable of DeliveryReport, not {type(source).__name__}")
    reports = list(source)
    for report in reports:
        if not isinstance(report, DeliveryReport):
            raise TypeError(f"source must hold DeliveryReport objects only, not {type(report).__name__}")
    return reports


def _reachable(
    roots: list[int], children: dict[int, dict[int | None, list[int]]], seen: set[int] | None = None
) -> set[int]:
    found = set(seen or ())
    todo = list(roots)
    while todo:
        index = todo.pop()
        if index in found:
            continue
        found.add(index)
        for kids in children.get(index, {}).values():
            todo.extend(kids)
    return found


def _post_order(roots: list[int], children: dict[int, dict[int | None, list[int]]]) -> Iterator[int]:
    """Every node under ``roots``, children before parents, each once
    (iterative: a history can hold a chain deeper than Python's recursion;
    a node met again -- a loop of parents -- is not entered twice)."""
    seen: set[int] = set()
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        stack: list[tuple[int, bool]] = [(root, False)]
        while stack:
            index, expanded = stack.pop()
            if expanded:
                yield index
                continue
            stack.append((index, True))
            for kids in children.get(index, {}).values():
                for kid in kids:
                    if kid not in seen:
                        seen.add(kid)
                        stack.append((kid, False))


def _build(
    index: int,
    reports: list[DeliveryReport],
    children: dict[int, dict[int | None, list[int]]],
    built: dict[int, FlowEvent],
    first: dict[str, int],
) -> FlowEvent:
    report = reports[index]
    kids = children.get(index, {})
    slow = {id(sub) for sub in report.slow}
    disabled = {id(sub) for sub in report.disabled}
    receivers = []
    claimed: set[int | None] = set()
    for sub, outcome, detail in sorted(_outcomes(report), key=lambda entry: entry[0].seq):
        mine = kids.get(sub.id, []) if sub.id not in claimed else []
        claimed.add(sub.id)
        receivers.append(
            FlowReceiver(
                sub, outcome, detail, id(sub) in slow, id(sub) in disabled, tuple(built[k] for k in mine if k in built)
            )
        )
    unattributed = [k for key, group in kids.items() if key not in claimed for k in group if k in built]
    parent_id = report.event.parent_id
    return FlowEvent(
        report,
        tuple(receivers),
        parent_id is not None and parent_id not in first,
        tuple(built[k] for k in sorted(unattributed)),
    )


def _outcomes(report: DeliveryReport) -> Iterator[tuple[Subscription, str, str]]:
    for sub in report.succeeded:
        yield sub, "succeeded", ""
    for sub, exc in report.failed:
        yield sub, "failed", type(exc).__name__
    for sub in report.timed_out:
        yield sub, "timed_out", ""
    for sub in report.cancelled:
        yield sub, "cancelled", ""
    for sub, reason, _ in report.skipped:
        yield sub, "skipped", reason
    for sub in report.scheduled:
        yield sub, "scheduled", ""
