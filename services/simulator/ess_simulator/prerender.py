"""Render the next second's device images ahead, off the second boundary.

Pollers ask at the boundary; rendering a few thousand images then would
answer the first requests of every second late. In the second half of each
second the images of the next one are packed in small chunks (the loop keeps
answering in between), so at the boundary a read is only a slice.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence

from ess_simulator.datastore import SiteDatastore

RENDER_AT = 0.4  # fraction of the second when the next one is rendered
CHUNK = 20  # images between two yields to the event loop
RECENT_S = 3  # a device read within this many seconds is rendered ahead


async def prerender_forever(
    datastores: Sequence[SiteDatastore], clock: Callable[[], float]
) -> None:
    while True:
        now = clock()
        second = math.floor(now)
        wait = second + RENDER_AT - now
        await asyncio.sleep(wait if wait > 0 else wait + 1)
        await prerender(datastores, math.floor(clock()) + 1)


async def prerender(datastores: Sequence[SiteDatastore], second: int) -> None:
    """Images of `second` for the devices read in the last few seconds (a device
    nobody polls costs nothing)."""
    rendered = 0
    for datastore in datastores:
        for endpoint in datastore.endpoints():
            last = endpoint.last_read_second
            if last is None or last < second - RECENT_S:
                continue
            endpoint.packed(second, datastore.sentinel(endpoint))
            rendered += 1
            if rendered % CHUNK == 0:
                await asyncio.sleep(0)
