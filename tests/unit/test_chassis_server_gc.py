"""chassis.server.freeze_startup_heap: what start-up allocated leaves the collector's generations."""

from __future__ import annotations

import gc

from chassis.server import freeze_startup_heap


def test_freeze_moves_the_live_heap_out_of_later_collections() -> None:
    gc.unfreeze()
    survivor = [object() for _ in range(1000)]
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() >= len(survivor)
        # A later full collection no longer walks them: what it tracks excludes the frozen heap.
        assert len(gc.get_objects(generation=2)) < gc.get_freeze_count()
    finally:
        gc.unfreeze()
