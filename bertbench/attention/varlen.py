"""sdpa-varlen: padding-free attention through PyTorch's own varlen_attn, no flash_attn package.

torch.nn.attention.varlen.varlen_attn (PyTorch >= 2.10) takes the real tokens of a batch laid
end to end, (tokens, heads, head_dim), with cumulative sequence offsets, as flash_attn's
varlen function does. It runs PyTorch's bundled FlashAttention kernel: CUDA only (torch 2.13
has no CPU kernel for aten::_flash_attention_forward), float16 and bfloat16 only, sm_80 or
newer, and no dropout (the op hard-codes dropout_p=0). torch 2.11 (on the H100 measured) has
varlen_attn(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, return_aux=None,
scale=None, window_size=(-1, -1)), full attention by default; 2.13 adds keyword-only
arguments after those; 2.10's took is_causal and no scale (see _call).

transformers calls an attention function per layer with query, key and value as (batch,
heads, tokens, head_dim) and wants (batch, tokens, heads, head_dim) back. A packed batch
(batches.PackedBatch.model_inputs) is one row: its cu_seq_lens_q/k and max_length_q/k reach
the function as keyword arguments, and are handed to varlen_attn as they are, so no layer
rebuilds them. A padded batch with an attention mask is unpadded in each layer (as
transformers does for flash_attention_2); one with no padding is split into equal rows.

The function is registered with transformers as "sdpa_varlen" (registered_name()); the
user-facing implementation name is "sdpa-varlen" (models.hf_implementation maps one to the
other). A '-' would also register, since only names with '/' are taken for Hub kernels, but
transformers' own names use '_'.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import torch

NAME = "sdpa-varlen"  # as the user names it (catalog.IMPLEMENTATIONS)
HF_NAME = "sdpa_varlen"  # the attn_implementation key registered with transformers
KERNEL_DTYPES = (torch.float16, torch.bfloat16)
MIN_CAPABILITY = (8, 0)  # PyTorch's FlashAttention kernels need sm_80 or newer


class DropoutUnsupported(NotImplementedError):
    """varlen_attn has no dropout; failures.failure_status reads this message as 'unavailable'."""


class NoKernel(RuntimeError):
    """No varlen kernel for these inputs; the message starts as SDPA's does ('No available kernel'),
    which failures.failure_status reads as 'unavailable'."""


def varlen_kernel() -> Callable[..., torch.Tensor] | None:
    """torch.nn.attention.varlen.varlen_attn, or None where this PyTorch has none (before 2.10).

    Looked up at every call (a dict look-up once imported), so tests can stand a fake in.
    """
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


@functools.cache
def _takes(kernel: Callable[..., torch.Tensor], argument: str) -> bool:
    """Whether varlen_attn takes `scale` or `window_size` (both added in torch 2.11; 2.10's has neither)."""
    try:
        return argument in inspect.signature(kernel).parameters
    except (TypeError, ValueError):
        return False


def unavailable_reason(device: torch.device, dtype: torch.dtype | None = None) -> str | None:
    """Why sdpa-varlen cannot run on this device (and dtype, where given), or None when it may."""
    if varlen_kernel() is None:
        return f"{NAME} needs torch.nn.attention.varlen.varlen_attn (PyTorch >= 2.10); this is {torch.__version__}"
    if device.type != "cuda":
        return f"{NAME}: varlen_attn runs PyTorch's FlashAttention kernel, which is CUDA-only (no {device.type} kernel)"
    if not torch.backends.cuda.is_flash_attention_available():
        return f"{NAME}: this PyTorch build has no FlashAttention kernel"
    capability = torch.cuda.get_device_capability(device)
    if capability < MIN_CAPABILITY:
        return f"{NAME}: FlashAttention needs sm_80 or newer, this GPU is sm_{capability[0]}{capability[1]}"
    if dtype is not None and dtype not in KERNEL_DTYPES:
        return f"{NAME}: varlen_attn's FlashAttention takes float16 or bfloat16, not {_dtype_name(dtype)}"
    return None


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def registered_name() -> str:
    """Register the attention function (and its mask) with transformers, once; the key to pass as
    attn_implementation.

    The mask function is transformers' own for flash attention: no mask when nothing is
    padded, else the 2D padding mask, from which each layer unpads. Without it transformers
    would build no mask at all for an unknown implementation, and a padded batch would
    attend to its padding.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

    AttentionInterface.register(HF_NAME, sdpa_varlen_attention)
    AttentionMaskInterface.register(HF_NAME, flash_attention_mask)
    return HF_NAME


def sdpa_varlen_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    cu_seq_lens_q: torch.Tensor | None = None,
    cu_seq_lens_k: torch.Tensor | None = None,
    max_length_q: int | None = None,
    max_length_k: int | None = None,
    sliding_window: int | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers' attention interface over varlen_attn: (batch, heads, tokens, head_dim) in,
    (batch, tokens, heads, head_dim) out, and no attention weights.

    Packed (cu_seq_lens_q given): one row of tokens, the offsets used as given. Padded: the
    2D boolean padding mask from flash_attention_mask, or None when nothing is padded.
    A local layer's sliding_window (ModernBERT's; flash_attention_2's meaning: |i - j| <
    sliding_window) is varlen_attn's window_size, as transformers hands it to flash_attn.
    """
    if dropout > 0.0:
        raise DropoutUnsupported(
            f"{NAME}: varlen_attn does not support dropout (attention dropout p={dropout} in training); "
            "flash_attention_2 does, or set attention_probs_dropout_prob=0"
        )
    kernel = varlen_kernel()
    if kernel is None:
        raise NoKernel(f"No available kernel: {unavailable_reason(query.device)}")
    if query.dtype not in KERNEL_DTYPES:
        raise NoKernel(
            f"No available kernel: {NAME} runs FlashAttention, which takes float16 or bfloat16, "
            f"not {_dtype_name(query.dtype)}"
        )
    window = None if sliding_window is None else (sliding_window - 1, sliding_window - 1)
    if window is not None and not _takes(kernel, "window_size"):
        raise NoKernel(f"No available kernel: this PyTorch's varlen_attn has no window_size for a local layer ({NAME})")
    q, k, v = (t.transpose(1, 2) for t in (query, key, value))  # (batch, tokens, heads, head_dim)
    batch, tokens = q.shape[:2]
    if cu_seq_lens_q is not None:
        if batch != 1:
            raise ValueError(f"{NAME}: packed inputs (cu_seq_lens_q) must be one row, not {batch}")
        cu_k = cu_seq_lens_k if cu_seq_lens_k is not None else cu_seq_lens_q
        max_q = max_length_q if max_length_q is not None else tokens
        max_k = max_length_k if max_length_k is not None else max_q
        out = _call(kernel, q[0], k[0], v[0], cu_seq_lens_q, cu_k, max_q, max_k, scaling, window)
        return out[None], None
    if attention_mask is None:  # no padding: each row is one sequence
        cu = torch.arange(0, (batch + 1) * tokens, tokens, dtype=torch.int32, device=q.device)
        flat = [t.reshape(batch * tokens, *t.shape[2:]) for t in (q, k, v)]
        out = _call(kernel, *flat, cu, cu, tokens, tokens, scaling, window)
        return out.view(q.shape), None
    return _unpadded(kernel, q, k, v, attention_mask, scaling, window), None


def _unpadded(
    kernel: Callable[..., torch.Tensor],
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor,
    scaling: float | None,
    window: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Attention over a padded batch: its real tokens gathered, attended, scattered back (zeros
    at padding). The maximum length is read to the host, once per layer, as flash_attention_2's
    unpadding does."""
    if mask.dim() != 2:
        raise ValueError(f"{NAME} takes a 2D padding mask, not a {mask.dim()}D one (a prepared 4D mask)")
    real = mask.bool()
    lengths = real.sum(1, dtype=torch.int32)
    cu = torch.nn.functional.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
    max_len = int(lengths.max())
    index = real.flatten().nonzero().flatten()
    flat = [t.reshape(-1, *t.shape[2:])[index] for t in (q, k, v)]
    out = q.new_zeros(q.shape[0] * q.shape[1], *q.shape[2:])
    out[index] = _call(kernel, *flat, cu, cu, max_len, max_len, scaling, window)
    return out.view(q.shape)


def _call(
    kernel: Callable[..., torch.Tensor],
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_q: torch.Tensor,
    cu_k: torch.Tensor,
    max_q: int,
    max_k: int,
    scaling: float | None,
    window: tuple[int, int] | None = None,
) -> torch.Tensor:
    """varlen_attn on (tokens, heads, head_dim) views; full (non-causal) attention by default in
    every version. Where the kernel takes no scale (torch 2.10), a non-default one is folded
    into the query. A window (a local layer's) is passed only when given, so the call of a
    global layer stays as it was."""
    max_q, max_k = int(max_q), int(max_k)
    extra = {"window_size": window} if window is not None else {}
    if scaling is None:
        return kernel(q, k, v, cu_q, cu_k, max_q, max_k, **extra)
    if _takes(kernel, "scale"):
        return kernel(q, k, v, cu_q, cu_k, max_q, max_k, scale=scaling, **extra)
    default = q.shape[-1] ** -0.5
    if abs(scaling - default) > 1e-12 * default:
        q = q * (scaling / default)
    return kernel(q, k, v, cu_q, cu_k, max_q, max_k, **extra)
