"""The names a user can ask for: task heads, model families and presets (attention implementations: attention.registry).

Plain data with no torch import, so that the command line can be read (and refused) in
milliseconds, before PyTorch and transformers load.
"""

from __future__ import annotations

from dataclasses import dataclass

TASKS = ("mlm", "classification", "token_classification", "qa")
NUM_LABELS = {"mlm": 0, "classification": 2, "token_classification": 9, "qa": 2}

# name: (layers, hidden size, attention heads); intermediate size is 4 x hidden as in BERT.
PRESETS: dict[str, tuple[int, int, int]] = {
    "tiny": (2, 128, 2),
    "mini": (4, 256, 4),
    "base": (12, 768, 12),  # the bert-base-uncased shape
    "large": (24, 1024, 16),  # the bert-large-uncased shape
}
PRESET_POSITIONS = 512  # BertConfig's max_position_embeddings, shared by BERT's presets


@dataclass(frozen=True)
class Family:
    """A BERT-family encoder: what the command line and the FLOP count need to know of it, torch-free
    (its transformers classes: model.families)."""

    name: str  # as its presets are named: <name>-tiny, <name>-base
    model_type: str  # config.model_type of its checkpoints
    checkpoint: str  # the Hub checkpoint whose shape <name>-base has
    positions: int  # the preset's usable positions (max_position_embeddings less RoBERTa's pad offset)
    token_types: bool = True  # the model takes token_type_ids (DistilBERT and ModernBERT do not)
    positions_after_pad: bool = False  # position ids start at pad_token_id + 1 (RoBERTa's embeddings)
    ffn_matrices: int = 2  # hidden x intermediate products per layer (3: ModernBERT's gated Wi is 2 x intermediate)


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family("bert", "bert", "bert-base-uncased", PRESET_POSITIONS),
        Family("roberta", "roberta", "FacebookAI/roberta-base", 512, positions_after_pad=True),
        Family("distilbert", "distilbert", "distilbert-base-uncased", 512, token_types=False),
        Family("electra", "electra", "google/electra-base-discriminator", 512),
        Family("modernbert", "modernbert", "answerdotai/ModernBERT-base", 8192, token_types=False, ffn_matrices=3),
    )
}


@dataclass(frozen=True)
class Preset:
    family: str  # a FAMILIES key
    layers: int
    hidden: int
    heads: int
    intermediate: int


# The other families' random-weight presets, beside BERT's PRESETS (whose names stay bare: tiny ... large):
# <family>-base has the shape of the family's base checkpoint, <family>-tiny is a CPU size for tests.
FAMILY_PRESETS: dict[str, Preset] = {
    "roberta-tiny": Preset("roberta", 2, 128, 2, 512),
    "roberta-base": Preset("roberta", 12, 768, 12, 3072),
    "distilbert-tiny": Preset("distilbert", 2, 128, 2, 512),
    "distilbert-base": Preset("distilbert", 6, 768, 12, 3072),
    "electra-tiny": Preset("electra", 2, 128, 2, 512),
    "electra-base": Preset("electra", 12, 768, 12, 3072),
    "modernbert-tiny": Preset("modernbert", 3, 128, 2, 192),  # one global layer, two local ones
    "modernbert-base": Preset("modernbert", 22, 768, 12, 1152),
}
PRESET_NAMES = (*PRESETS, *FAMILY_PRESETS)  # what --model-size takes


def preset(size: str) -> Preset:
    """The preset of --model-size: BERT's bare sizes (intermediate 4 x hidden) or a family's."""
    if size in FAMILY_PRESETS:
        return FAMILY_PRESETS[size]
    layers, hidden, heads = PRESETS[size]
    return Preset("bert", layers, hidden, heads, 4 * hidden)


def preset_name(size: str) -> str:
    """The preset as rows and manifests name it: bert-<size> for BERT's, the name itself for the others."""
    return size if size in FAMILY_PRESETS else f"bert-{size}"


def family_of_type(model_type: str) -> Family | None:
    """The family of a checkpoint's config.model_type, or None when it is not one benchmarked."""
    return next((f for f in FAMILIES.values() if f.model_type == model_type), None)
