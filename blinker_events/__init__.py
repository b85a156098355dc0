"""An event bus on blinker: sync and async publishing with timeouts, a cycle
guard, error isolation, auto-disable and a bounded history.

The module-level functions act on :data:`default_bus`; an :class:`EventBus`
made by hand has the same methods and shares nothing with it. A few bus
methods have no module-level twin and are used on a bus, the default one
included: ``guard``/``unguard``, ``set_dispatch_context``, the outlets and
the read-only settings (``blinker_events.default_bus.settings``).

The documentation -- a tutorial, a page per concept, the integrations and
this API -- is at https://blinker-events.readthedocs.io/en/latest/
(``docs/`` in the source).
"""

# For maintainers: the package is layered; each private module imports only
# from the layers above it in this list (``TYPE_CHECKING`` imports too: where a low module
# names something a higher one provides, it declares a ``Protocol``):
#
# - model: ``_errors``, ``_describe``, ``_context`` (the causal chain),
#   ``_serial`` (what JSON-safe data is), ``_types`` (event types, their
#   keys and names), ``_events`` (``Event``), ``_typed`` (``TypedEvent``:
#   event classes);
# - rules: ``_checks`` (argument validation), ``_settings`` (the one frozen
#   ``BusSettings``);
# - machinery: ``_fork``, ``_interop`` (every use of another library's
#   private API), ``_threads`` (the pool), ``_loop_thread`` (the bus loop),
#   ``_watchdog``, ``_lifecycle``;
# - who listens: ``_subscription``, ``_index``, ``_signals`` (a signal per
#   type, immutable routes), ``_class_routes`` (receivers of typed event
#   classes and their bases), ``_bridges`` (relays for signals the bus does
#   not own), ``_outlets``, ``_registry`` (held by the bus);
# - what happened: ``_report``, ``_outcomes`` (the one outcome recorder and
#   the cycle rule), ``_slow`` (the slow-receiver warning), ``_history``,
#   ``_hooks`` (the instrumentation protocol);
# - engine: ``_runtime`` (what the paths receive; how every publish begins
#   and ends), then the paths, which differ only in where receivers run:
#   ``_sync`` and ``_async`` (calling receivers; ``_tasks``: the async
#   receivers' tasks), ``_inline``
#   (``publish_sync``), ``_on_loop`` (``await publish``), ``_worker``
#   (``publish_nowait``); ``_waiting`` and ``_streaming`` (waiters and
#   streams, which observe the history); ``_instrument`` (how a
#   publish with a bus's hooks begins);
# - facade: ``_bus`` (``EventBus``, thin; what it keeps in
#   ``_bus_state``: its settings and history), ``_compat`` (blinker's ``Signal``
#   and ``Namespace``, drop-in), :mod:`blinker_events.lowlevel` (the public
#   API for integrations), and this module;
# - integrations: :mod:`blinker_events.flask`, :mod:`blinker_events.django`,
#   :mod:`blinker_events.redis`, :mod:`blinker_events.testing` (the pytest
#   plugin and test helpers), :mod:`blinker_events.otel`, on public names and
#   ``lowlevel`` only.

from __future__ import annotations

import atexit

from ._bus import EventBus
from ._compat import ANY, NamedSignal, Namespace, Signal, default_namespace, signal
from ._errors import CircularEventError, DispatchContextError, EventSystemError, EventTimeoutError, QueueFullError
from ._events import Event, EventTypeLike
from ._lifecycle import shutdown_all
from ._report import DeliveryReport
from ._streaming import EventStream
from ._subscription import Subscription
from ._typed import TypedEvent
from ._types import EventType, SystemEventType, event_type_name
from ._waiting import Waiter

#: The one source of the version: pyproject.toml reads it from here
#: (``[tool.hatch.version]``), so the metadata always agrees.
__version__ = "0.1.0"

__all__ = [
    "ANY",
    "CircularEventError",
    "DeliveryReport",
    "DispatchContextError",
    "Event",
    "EventBus",
    "EventStream",
    "EventSystemError",
    "EventTimeoutError",
    "EventType",
    "EventTypeLike",
    "NamedSignal",
    "Namespace",
    "QueueFullError",
    "Signal",
    "Subscription",
    "SystemEventType",
    "TypedEvent",
    "Waiter",
    "__version__",
    "bridge",
    "clear_history",
    "configure",
    "default_bus",
    "default_namespace",
    "disable",
    "enable",
    "event_type_name",
    "expect",
    "get_delivery_reports",
    "get_history",
    "get_subscriber_count",
    "get_subscriptions",
    "is_enabled",
    "publish",
    "publish_nowait",
    "publish_sync",
    "set_failure_threshold",
    "set_history_size",
    "set_max_depth",
    "set_overflow",
    "set_propagate_exceptions",
    "set_queue_size",
    "set_slow_after",
    "set_sync_executor",
    "set_timeout",
    "shutdown",
    "signal",
    "signal_for",
    "stats",
    "stream",
    "subscribe",
    "unbridge",
    "unsubscribe",
    "unsubscribe_by_source",
    "wait_for",
]

# Tracebacks and docs name the public classes where they are imported
# from, blinker_events, not the private module that defines them (as httpx
# does).
for _public in (
    CircularEventError,
    DeliveryReport,
    DispatchContextError,
    Event,
    EventBus,
    EventStream,
    EventSystemError,
    EventTimeoutError,
    EventType,
    NamedSignal,
    Namespace,
    QueueFullError,
    Signal,
    Subscription,
    SystemEventType,
    TypedEvent,
    Waiter,
):
    _public.__module__ = "blinker_events"
del _public

#: The bus the module-level functions use.
default_bus = EventBus()

#: Seconds the interpreter's exit waits, in all, for every bus -- this one
#: and those made by hand -- to deliver what it queued; read at exit, so a
#: program may change it. What is left then is dropped, counted and logged.
ATEXIT_DRAIN_SECONDS = 30.0


def _drain_at_exit() -> None:
    shutdown_all(ATEXIT_DRAIN_SECONDS)


atexit.register(_drain_at_exit)

subscribe = default_bus.subscribe
unsubscribe = default_bus.unsubscribe
unsubscribe_by_source = default_bus.unsubscribe_by_source
publish = default_bus.publish
publish_sync = default_bus.publish_sync
publish_nowait = default_bus.publish_nowait
signal_for = default_bus.signal_for
configure = default_bus.configure
set_timeout = default_bus.set_timeout
set_propagate_exceptions = default_bus.set_propagate_exceptions
set_failure_threshold = default_bus.set_failure_threshold
set_history_size = default_bus.set_history_size
set_max_depth = default_bus.set_max_depth
set_queue_size = default_bus.set_queue_size
set_overflow = default_bus.set_overflow
set_sync_executor = default_bus.set_sync_executor
set_slow_after = default_bus.set_slow_after
stats = default_bus.stats
get_subscriber_count = default_bus.get_subscriber_count
get_subscriptions = default_bus.get_subscriptions
get_history = default_bus.get_history
get_delivery_reports = default_bus.get_delivery_reports
clear_history = default_bus.clear_history
is_enabled = default_bus.is_enabled
enable = default_bus.enable
disable = default_bus.disable
shutdown = default_bus.shutdown
bridge = default_bus.bridge
unbridge = default_bus.unbridge
expect = default_bus.expect
wait_for = default_bus.wait_for
stream = default_bus.stream
