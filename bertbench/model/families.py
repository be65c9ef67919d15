"""The BERT-family encoders a run can load: for each, its transformers config class, a model
class per task head, the config of a random-weight preset and the classification head on
each sequence's first hidden state (the packed route pools there itself).

One table, FAMILIES, keyed as spec.catalog.FAMILIES (which holds what the command line needs
without torch). Nothing else branches on a family's name: adding one is one entry here and
one in the catalog.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    DistilBertConfig,
    DistilBertForMaskedLM,
    DistilBertForQuestionAnswering,
    DistilBertForSequenceClassification,
    DistilBertForTokenClassification,
    ElectraConfig,
    ElectraForMaskedLM,
    ElectraForQuestionAnswering,
    ElectraForSequenceClassification,
    ElectraForTokenClassification,
    ModernBertConfig,
    ModernBertForMaskedLM,
    ModernBertForQuestionAnswering,
    ModernBertForSequenceClassification,
    ModernBertForTokenClassification,
    PretrainedConfig,
    PreTrainedModel,
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaForQuestionAnswering,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
)

from bertbench.spec import catalog
from bertbench.spec.catalog import Preset

# (model, the first token's hidden state of each sequence, (batch, 1, hidden)) -> logits, as the head computes them
Classify = Callable[[PreTrainedModel, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ModelFamily:
    spec: catalog.Family
    config_class: type[PretrainedConfig]
    heads: dict[str, type[PreTrainedModel]]  # task -> model class (catalog.TASKS)
    shape: Callable[[Preset], dict]  # a preset's config keywords
    classify: Classify  # sequence classification on the first tokens (the padded head's own arithmetic)
    packed_reason: Callable[[PretrainedConfig], str | None] = lambda config: None  # why --packed cannot run it

    @property
    def name(self) -> str:
        return self.spec.name


def _bert_shape(p: Preset) -> dict:
    return {
        "num_hidden_layers": p.layers,
        "hidden_size": p.hidden,
        "num_attention_heads": p.heads,
        "intermediate_size": p.intermediate,
    }


def _bert_classify(model, first: torch.Tensor) -> torch.Tensor:
    return model.classifier(model.dropout(model.bert.pooler(first)))


def _head_on_first(model, first: torch.Tensor) -> torch.Tensor:
    """RoBERTa's and ELECTRA's classification heads read features[:, 0] themselves."""
    return model.classifier(first)


def _distilbert_classify(model, first: torch.Tensor) -> torch.Tensor:
    pooled = torch.nn.functional.relu(model.pre_classifier(first[:, 0]))
    return model.classifier(model.dropout(pooled))


def _modernbert_classify(model, first: torch.Tensor) -> torch.Tensor:
    return model.classifier(model.drop(model.head(first[:, 0])))


def _modernbert_packed(config: PretrainedConfig) -> str | None:
    if getattr(config, "classifier_pooling", "cls") != "cls":
        return f"ModernBERT's classifier_pooling={config.classifier_pooling!r} has no packed route here (cls only)"
    return None


FAMILIES: dict[str, ModelFamily] = {
    f.name: f
    for f in (
        ModelFamily(
            catalog.FAMILIES["bert"],
            BertConfig,
            {
                "mlm": BertForMaskedLM,
                "classification": BertForSequenceClassification,
                "token_classification": BertForTokenClassification,
                "qa": BertForQuestionAnswering,
            },
            _bert_shape,
            _bert_classify,
        ),
        ModelFamily(  # roberta-base: 514 positions, ids from pad_token_id + 1 = 2; one token type
            catalog.FAMILIES["roberta"],
            RobertaConfig,
            {
                "mlm": RobertaForMaskedLM,
                "classification": RobertaForSequenceClassification,
                "token_classification": RobertaForTokenClassification,
                "qa": RobertaForQuestionAnswering,
            },
            lambda p: {
                **_bert_shape(p),
                "vocab_size": 50265,
                "max_position_embeddings": 514,
                "type_vocab_size": 1,
                "layer_norm_eps": 1e-5,
                "pad_token_id": 1,
                "bos_token_id": 0,
                "eos_token_id": 2,
            },
            _head_on_first,
        ),
        ModelFamily(
            catalog.FAMILIES["distilbert"],
            DistilBertConfig,
            {
                "mlm": DistilBertForMaskedLM,
                "classification": DistilBertForSequenceClassification,
                "token_classification": DistilBertForTokenClassification,
                "qa": DistilBertForQuestionAnswering,
            },
            lambda p: {"n_layers": p.layers, "dim": p.hidden, "n_heads": p.heads, "hidden_dim": p.intermediate},
            _distilbert_classify,
        ),
        ModelFamily(  # the discriminator's shape: embeddings as wide as the hidden states
            catalog.FAMILIES["electra"],
            ElectraConfig,
            {
                "mlm": ElectraForMaskedLM,
                "classification": ElectraForSequenceClassification,
                "token_classification": ElectraForTokenClassification,
                "qa": ElectraForQuestionAnswering,
            },
            lambda p: {**_bert_shape(p), "embedding_size": p.hidden},
            _head_on_first,
        ),
        ModelFamily(  # ModernBertConfig's defaults are modernbert-base's (rotary, a global layer in 3)
            catalog.FAMILIES["modernbert"],
            ModernBertConfig,
            {
                "mlm": ModernBertForMaskedLM,
                "classification": ModernBertForSequenceClassification,
                "token_classification": ModernBertForTokenClassification,
                "qa": ModernBertForQuestionAnswering,
            },
            _bert_shape,
            _modernbert_classify,
            _modernbert_packed,
        ),
    )
}


def family_of(config: PretrainedConfig) -> ModelFamily:
    """The family of a loaded or read config; ValueError for a model that is none of them."""
    for family in FAMILIES.values():
        if isinstance(config, family.config_class):
            return family
    names = ", ".join(FAMILIES)
    raise ValueError(f"a {type(config).__name__} (model_type {config.model_type!r}) is none of {names}")


def preset_config(size: str) -> PretrainedConfig:
    """The random-weight preset's config (catalog.preset): the family's defaults in its shape."""
    shape = catalog.preset(size)
    family = FAMILIES[shape.family]
    return family.config_class(**family.shape(shape))


def position_offset(config: PretrainedConfig) -> int:
    """What a family adds to 0-based position ids: RoBERTa's start after its pad id, the others' at 0."""
    return config.pad_token_id + 1 if family_of(config).spec.positions_after_pad else 0


def pad_id(config: PretrainedConfig) -> int:
    """The token id a padded batch fills with: the model's own pad_token_id (0 where it has none)."""
    pad = getattr(config, "pad_token_id", None)
    return pad if isinstance(pad, int) and 0 <= pad < config.vocab_size else 0
