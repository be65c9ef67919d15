"""The names a user can ask for: task heads, model presets, attention implementations.

Plain data with no torch import, so that the command line can be read (and refused) in
milliseconds, before PyTorch and transformers load.
"""

from __future__ import annotations

TASKS = ("mlm", "classification", "token_classification", "qa")
NUM_LABELS = {"mlm": 0, "classification": 2, "token_classification": 9, "qa": 2}

# name: (layers, hidden size, attention heads); intermediate size is 4 x hidden as in BERT.
PRESETS: dict[str, tuple[int, int, int]] = {
    "tiny": (2, 128, 2),
    "mini": (4, 256, 4),
    "base": (12, 768, 12),  # the bert-base-uncased shape
    "large": (24, 1024, 16),  # the bert-large-uncased shape
}
PRESET_POSITIONS = 512  # BertConfig's max_position_embeddings, shared by every preset

# SDPA pinned to one backend (torch.nn.attention.SDPBackend member names); the model runs "sdpa".
SDPA_BACKEND_NAMES = {
    "sdpa-efficient": "EFFICIENT_ATTENTION",
    "sdpa-cudnn": "CUDNN_ATTENTION",
    "sdpa-flash": "FLASH_ATTENTION",
    "sdpa-math": "MATH",
}
IMPLEMENTATIONS = (
    "eager",
    "sdpa",
    *SDPA_BACKEND_NAMES,
    "flash_attention_2",
    "flash_attention_3",
    "flex_attention",
    "sdpa-varlen",  # PyTorch's own varlen_attn (bertbench.attention.varlen); no flash_attn package
)
FLASH_PACKAGES = {"flash_attention_2": "flash_attn", "flash_attention_3": "flash_attn_3"}
VARLEN = ("flash_attention_2", "flash_attention_3", "sdpa-varlen")  # implementations with a packed (varlen) path
