import gc
import weakref

import torch

from bertbench.measure.failures import frozen_heap, release_memory


class Node:
    def __init__(self):
        self.me = self  # a reference cycle: only the garbage collector frees it


def test_a_frozen_heap_still_frees_what_a_failed_call_leaves_and_thaws_at_the_end():
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # the imports: left out of every collection in the block
        left = weakref.ref(Node())  # made inside the block, as a failed call's tensors are
        assert left() is not None
        release_memory(torch.device("cpu"))
        assert left() is None
        with frozen_heap():  # nested: the outer freeze stays
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen
    assert gc.get_freeze_count() == 0


def test_a_run_thaws_the_heap_even_when_it_raises():
    try:
        with frozen_heap():
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert gc.get_freeze_count() == 0
