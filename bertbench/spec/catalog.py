"""The names a user can ask for: task heads and model presets (attention implementations: attention.registry).

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
