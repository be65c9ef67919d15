"""The attention implementations a run can compare, one registry entry each.

An entry says everything the rest of the package asks of an implementation: the name a user
gives, what transformers is asked for (`attn_implementation`), whether it needs a package or a
GPU (`unavailable`), the context every forward runs in (an SDPA backend pinned, flex's dynamic
compile), whether it has a padding-free (varlen) route for --packed, whether `--optimization all`
takes it, and the profiler operators that show its fused kernel ran. Nothing else branches on
an implementation's name.

No torch import at module level: the command line lists and checks these names before PyTorch
loads; each entry's functions import what they need when called.

Adding an implementation: its kernel in a module of its own (as varlen.py, registered with
transformers' AttentionInterface from its `runs`), and one `register(Implementation(...))` here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

Reason = Callable[["torch.device", "torch.dtype | None"], "str | None"]

SDPA_OP = r"aten::_scaled_dot_product_\w+"  # every SDPA backend's operator
FLASH_OP = r"flash_attn\w*::\w+"  # flash_attn's and flash_attn_3's custom operators
FLASH_FORWARD_OP = r"aten::_flash_attention_forward"  # PyTorch's bundled FlashAttention (under SDPA too)


def _always(device: torch.device, dtype: torch.dtype | None = None) -> str | None:
    return None


@dataclass(frozen=True)
class Implementation:
    name: str  # as the user names it
    runs: str | Callable[[], str]  # transformers' attn_implementation (a callable registers it first)
    unavailable: Reason = _always  # why it cannot run on this device in this dtype, or None
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext  # around every forward
    packed: bool = False  # has a variable-length (padding-free) route: --packed runs it
    in_all: bool = True  # taken by --optimization all (False: seconds of compiling a point; named, it runs)
    sdpa_backend: str | None = None  # torch.nn.attention.SDPBackend member it is pinned to
    fused_ops: tuple[str, ...] = ()  # regexes of the profiler operators of its fused kernel

    def hf_name(self) -> str:
        return self.runs() if callable(self.runs) else self.runs


REGISTRY: dict[str, Implementation] = {}


def register(implementation: Implementation) -> Implementation:
    if implementation.name in REGISTRY:
        raise ValueError(f"attention implementation {implementation.name!r} is registered already")
    REGISTRY[implementation.name] = implementation
    return implementation


def get(name: str) -> Implementation:
    return REGISTRY[name]


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def packed_names() -> tuple[str, ...]:
    return tuple(n for n, i in REGISTRY.items() if i.packed)


def fused_ops() -> tuple[str, ...]:
    return tuple(dict.fromkeys(op for i in REGISTRY.values() for op in i.fused_ops))


def hf_implementation(name: str) -> str:
    """The attn_implementation transformers is asked for (sdpa-varlen: registered first)."""
    return REGISTRY[name].hf_name()


def attention_context(name: str) -> contextlib.AbstractContextManager:
    """The context every forward of this implementation runs in."""
    return REGISTRY[name].context()


def unavailable_reason(name: str, device: torch.device, dtype: torch.dtype | None = None) -> str | None:
    """Why this implementation cannot run on this machine (in this dtype, where given), or None when it may."""
    return REGISTRY[name].unavailable(device, dtype)


# --- the built-in implementations ---------------------------------------------------------------


def _pinned(backend: str) -> Callable[[], contextlib.AbstractContextManager]:
    def context() -> contextlib.AbstractContextManager:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel(getattr(SDPBackend, backend))

    return context


def _gpu_only(name: str) -> Reason:
    def reason(device: torch.device, dtype: torch.dtype | None = None) -> str | None:
        return f"{name} has no CPU kernel in PyTorch" if device.type != "cuda" else None

    return reason


def _flash(name: str, package: str, hopper: bool) -> Reason:
    def reason(device: torch.device, dtype: torch.dtype | None = None) -> str | None:
        if device.type != "cuda":
            return f"{name} needs a CUDA GPU"
        from transformers.utils import is_flash_attn_2_available, is_flash_attn_3_available

        if not (is_flash_attn_3_available if hopper else is_flash_attn_2_available)():
            return f"{package} is not installed or does not support this GPU"
        import torch

        if hopper and torch.cuda.get_device_capability(device)[0] != 9:
            return f"{name} needs a Hopper GPU (sm_90)"
        return None

    return reason


# flex_attention's kernel and block mask are compiled by transformers on first use. Compiled for
# static shapes they recompiled at every new batch size, seqlen and mask kind (two frames, 7-10 s a
# point on the H100); compiled for dynamic shapes, once per seqlen and mask kind, then reused.
FLEX_DYNAMO = {"assume_static_by_default": False, "recompile_limit": 64}


def _flex_context() -> contextlib.AbstractContextManager:
    """flex_attention compiled for dynamic shapes (FLEX_DYNAMO; a --compile of a flex model too)."""
    import torch

    return torch._dynamo.config.patch(**FLEX_DYNAMO)


def _varlen_name() -> str:
    from bertbench.attention import varlen

    return varlen.registered_name()


def _varlen_reason(device: torch.device, dtype: torch.dtype | None = None) -> str | None:
    from bertbench.attention import varlen

    return varlen.unavailable_reason(device, dtype)


register(Implementation("eager", "eager"))
register(Implementation("sdpa", "sdpa", fused_ops=(SDPA_OP,)))
for _name, _backend, _cpu in (
    ("sdpa-efficient", "EFFICIENT_ATTENTION", False),
    ("sdpa-cudnn", "CUDNN_ATTENTION", False),
    ("sdpa-flash", "FLASH_ATTENTION", True),
    ("sdpa-math", "MATH", True),
):
    register(
        Implementation(
            _name,
            "sdpa",
            unavailable=_always if _cpu else _gpu_only(_name),
            context=_pinned(_backend),
            sdpa_backend=_backend,
            fused_ops=(SDPA_OP,),
        )
    )
for _name, _package, _hopper in (
    ("flash_attention_2", "flash_attn", False),
    ("flash_attention_3", "flash_attn_3", True),
):
    register(
        Implementation(_name, _name, unavailable=_flash(_name, _package, _hopper), packed=True, fused_ops=(FLASH_OP,))
    )
# Seconds of compiling at each new shape and mask kind (the QA sweep 117 s on the H100): with it a
# ./run_bert.sh head took 233-290+ s against ~137 s, so `all` leaves it out. Named, it runs.
register(Implementation("flex_attention", "flex_attention", context=_flex_context, in_all=False))
# PyTorch's own varlen_attn (attention/varlen.py); no flash_attn package.
register(
    Implementation("sdpa-varlen", _varlen_name, unavailable=_varlen_reason, packed=True, fused_ops=(FLASH_FORWARD_OP,))
)
