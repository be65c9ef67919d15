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


def test_a_flash_attn_build_without_the_path_a_model_needs_is_unavailable_with_its_reason():
    from bertbench.measure.failures import Failure

    # what flash-attn's TORCH_CHECK raises when its local (sliding-window) path was compiled out
    failure = Failure.of(RuntimeError("This flash attention build does not support local attention."))
    assert failure.status == "unavailable"
    assert failure.detail == "RuntimeError: This flash attention build does not support local attention."
    assert Failure.of(RuntimeError("CUDA error: an illegal memory access was encountered")).status == "error"
