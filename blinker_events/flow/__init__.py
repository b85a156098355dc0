"""A picture of the event flow: the causal trees in a bus's history, as
data, as a self-contained SVG and as Mermaid text.

Each tree starts at an event published from outside any receiver (its
``parent_id`` is None) and goes event -> each of its receivers (with its
outcome) -> the events that receiver published while it ran, and so on. An
event whose parent is not among the reports given (the history dropped it,
or it came from another process) starts a tree of its own, marked as such.
Which receiver published an event is :func:`blinker_events.lowlevel.published_by`;
an event whose receiver is unknown (made by code that was not a receiver of
its parent when it ran, or rebuilt from another process) hangs from its
parent event directly.

The reports do not time receivers one by one (that would cost every
publish): an event's node shows its publish's duration -- from the start
until the last receiver it waited for finished -- and a receiver's node its
outcome, and whether it was slow (``slow_after``) or disabled by this publish.

Everything here is pure Python, standard library only, and renders on the
server: :func:`to_svg` makes an SVG with no script and no external
reference, every label cut to a line and XML-escaped, so it can be inlined
into a page as it is; :func:`to_mermaid` makes a ``flowchart`` for wherever
Mermaid renders (GitHub, docs). Both draw at most ``max_nodes`` nodes and
say how many more there were.
"""

from ._model import OUTCOMES, FlowEvent, FlowReceiver, trees
from ._render import COLOURS, MAX_NODES, duration_text, to_mermaid, to_svg

__all__ = [
    "COLOURS",
    "MAX_NODES",
    "OUTCOMES",
    "FlowEvent",
    "FlowReceiver",
    "duration_text",
    "to_mermaid",
    "to_svg",
    "trees",
]
