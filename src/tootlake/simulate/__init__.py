"""A simulated fediverse: Mastodon instances on loopback, for tests, demos and benchmarks.

    from tootlake.simulate import Fediverse, InstanceSettings

    async with Fediverse(instances=3, settings=InstanceSettings(token="t"), seed=1) as fed:
        fed.urls                           # ["http://127.0.0.1:41123", ...]
        await fed.publish(500, rate=100)   # or fed.start_publishing(rate=...)
        fed.instances[0].cut(mid_event=True)
        truth = fed.truth()                # what the lake should hold

Each instance speaks the Mastodon protocol as real servers do (instance documents, SSE and
WebSocket streaming, the REST public timeline with paging and rate limits, the 4.5 live-feed
settings); see docs/mastodon-api.md. `FediverseThread` runs one for synchronous code.
"""

from __future__ import annotations

try:
    import aiohttp  # noqa: F401  (the servers are aiohttp apps)
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    from tootlake.errors import MissingDependency

    raise MissingDependency("aiohttp", "collect") from exc

from tootlake.simulate.fediverse import Fediverse, FediverseThread, Truth
from tootlake.simulate.server import FEED_ACCESS, Instance, InstanceSettings
from tootlake.simulate.status import SimPost
from tootlake.simulate.workload import Author, Draft, Workload, generate

__all__ = [
    "FEED_ACCESS",
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
