"""A simulated fediverse: Mastodon instances on loopback, for tests, demos and benchmarks.

    from tootlake.simulate import Fediverse, InstanceSettings

    async with Fediverse(instances=3, settings=InstanceSettings(token="t"), seed=1) as fed:
        fed.urls                           # ["http://127.0.0.1:41123", ...]
        await fed.publish(500, rate=100)   # or fed.start_publishing(rate=...)
        fed.instances[0].cut(mid_event=True)
        truth = fed.truth()                # what the lake should hold

Each instance speaks the Mastodon protocol as real servers do (instance documents, SSE and
WebSocket streaming, the REST public timeline with paging and rate limits, the 4.5 live-feed
settings), as docs.joinmastodon.org describes them. `FediverseThread` runs one for synchronous code.

`Fediverse(hostile=0.1, hostile_instances=INSTANCE_KINDS)` makes it as hostile as the real
fediverse: mutated statuses (to reject, or with fields to coerce, or shaped like Pleroma,
GoToSocial...) and instances that flood, stall, send huge bodies or bad documents; the truth
says which posts are good (`tootlake.simulate.hostile`, docs/simulate.md).
"""

from __future__ import annotations

try:
    import aiohttp  # noqa: F401  (the servers are aiohttp apps)
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    from tootlake.errors import MissingDependency

    raise MissingDependency("aiohttp", "collect") from exc

from tootlake.simulate.fediverse import Fediverse, FediverseThread, Truth
from tootlake.simulate.hostile import INSTANCE_KINDS
from tootlake.simulate.server import FEED_ACCESS, Instance, InstanceSettings
from tootlake.simulate.status import SimPost
from tootlake.simulate.workload import Author, Draft, Workload, generate

__all__ = [
    "FEED_ACCESS",
    "INSTANCE_KINDS",
    "Author",
    "Draft",
    "Fediverse",
    "FediverseThread",
    "Instance",
    "InstanceSettings",
    "SimPost",
    "Truth",
    "Workload",
    "generate",
]
