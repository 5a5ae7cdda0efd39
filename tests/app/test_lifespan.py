"""What the lifespan leaves in place while the server runs."""

from __future__ import annotations

import gc

from tests.support.server import in_process


async def test_what_start_up_built_is_out_of_the_garbage_collector_s_way_the_transport_s_included(db_url: str) -> None:
    # Collections during traffic should walk per-request objects only. The MCP transport's task
    # group (and the anyio modules it imports) is made when the lifespan starts the transport:
    # frozen with the rest, not walked by every full collection for the life of the process.
    async with in_process(database_url=db_url) as env:
        task_group = env.services.mcp.session_manager._task_group
        assert task_group is not None
        assert not any(obj is task_group for obj in gc.get_objects())
