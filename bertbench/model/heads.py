"""Task heads and model presets, loaded with an attention implementation (attention.registry).

Every model of one task is built from the same weights: the baseline is made (or loaded)
first, and its state dict is loaded into each other implementation, each with a config
object of its own (a shared config would make every model run the same attention).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn.functional import cross_entropy
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import QuestionAnsweringModelOutput, SequenceClassifierOutput

try:  # transformers 5: skip the random initialisation of weights about to be overwritten
    from transformers.initialization import no_init_weights
except ImportError:  # pragma: no cover - an older 5.x initialises them, only slower
    no_init_weights = contextlib.nullcontext

from bertbench.attention.registry import attention_context, hf_implementation
from bertbench.attention.registry import unavailable_reason as unavailable_reason  # re-exported
from bertbench.model import families
from bertbench.model.batches import PackedBatch, segments
from bertbench.model.families import ModelFamily, family_of
from bertbench.spec.catalog import NUM_LABELS

TASK_HEADS: dict[str, type[PreTrainedModel]] = families.FAMILIES["bert"].heads  # BERT's; others: heads_of


def heads_of(config: PretrainedConfig) -> dict[str, type[PreTrainedModel]]:
    """The model class of each task head for this config's family (families.FAMILIES)."""
    return family_of(config).heads


def preset_config(task: str, size: str) -> PretrainedConfig:
    """A random-weight preset's config (BERT's sizes or a family's, spec.catalog.preset) for this task."""
    config = families.preset_config(size)
    if NUM_LABELS[task]:
        config.num_labels = NUM_LABELS[task]
    return config


def load_config(model_path: str, local_files_only: bool = False) -> PretrainedConfig:
    """The checkpoint's config; raises if the path or id cannot be read, or is no family benchmarked
    (BERT, RoBERTa, DistilBERT, ELECTRA, ModernBERT), before a run."""
    config = AutoConfig.from_pretrained(model_path, local_files_only=local_files_only)
    try:
        family_of(config)
    except ValueError as e:
        raise ValueError(f"{model_path}: {e}, not a BERT-family checkpoint") from None
    return config


@dataclass
class LoadedModel:
    """One implementation's model and how to call it."""

    name: str  # the implementation as the user named it (e.g. sdpa-flash)
    model: PreTrainedModel

    @property
    def runs(self) -> str:
        """What the model really runs, as transformers records it."""
        return self.model.config._attn_implementation

    @property
    def family(self) -> ModelFamily:
        return family_of(self.model.config)

    def forward(self, inputs: dict) -> Callable[[], object]:
        def call():
            with attention_context(self.name):
                return self.model(**inputs)

        return call

    def forward_packed(self, packed: PackedBatch) -> Callable[[], object]:
        """The forward on a packed batch, with each head's loss over each sequence alone.

        Sequence classification pools each sequence's first token, gathered from the packed
        hidden states at cu_seqlens[:-1], through the family's head (families: BERT's encoder
        also runs its own pooler on the row's first token, a 1 x hidden product left in).
        Question answering takes the softmax of the start and end logits over each sequence's
        own tokens (transformers' padded loss also spans the padding; the cost is the same).
        The inputs are the family's: no token_type_ids where it takes none, RoBERTa's position
        ids after its pad id (families.position_offset), as its padded forward numbers them.
        """
        model, labels, family = self.model, packed.labels, self.family
        inputs = packed.model_inputs(family.spec.token_types, families.position_offset(model.config))
        heads = family.heads
        if isinstance(model, heads["classification"]):

            def run():
                hidden = model.base_model(**inputs).last_hidden_state[0, packed.first_token_index]
                logits = family.classify(model, hidden[:, None])
                return SequenceClassifierOutput(loss=cross_entropy(logits.float(), labels["labels"]), logits=logits)

        elif isinstance(model, heads["qa"]):

            def run():
                output = model(**inputs)
                loss = sum(
                    cross_entropy(segments(logits, packed, float("-inf")).float(), labels[f"{end}_positions"])
                    for end, logits in (("start", output.start_logits), ("end", output.end_logits))
                )
                return QuestionAnsweringModelOutput(
                    loss=loss / 2, start_logits=output.start_logits, end_logits=output.end_logits
                )

        else:
            return self.forward({**inputs, **labels})

        def call():
            with attention_context(self.name):
                return run()

        return call


def training_step(model: PreTrainedModel, forward: Callable[[], object]) -> Callable[[], object]:
    """Forward and backward with the model's dropout, no optimizer step: the loss's gradient
    for every weight, the part of training that attention changes."""

    def call():
        output = forward()
        output.loss.backward()
        model.zero_grad(set_to_none=True)  # as an optimizer step would consume them; each step starts bare
        return output

    return call


def evaluated(model: PreTrainedModel, forward: Callable[[], object]) -> Callable[[], object]:
    """The forward without dropout and gradients, for parity with the baseline in train mode."""

    def call():
        model.eval()
        try:
            with torch.inference_mode():
                return forward()
        finally:
            model.train()

    return call


def load_baseline(
    task: str,
    name: str,
    model_size: str,
    model_path: str | None,
    device: torch.device,
    dtype: torch.dtype,
    seed: int,
) -> LoadedModel:
    """The baseline model, whose weights every other implementation copies.

    A preset gets random weights from `seed`; a checkpoint's task head (its family's class,
    families.FAMILIES) may be newly initialised (transformers warns), and that head, too, is
    then shared by all.
    """
    torch.manual_seed(seed)
    if model_path is None:
        config = preset_config(task, model_size)
        head = heads_of(config)[task]
        with device:
            model = head._from_config(config, attn_implementation=hf_implementation(name), dtype=dtype)
    else:
        head = heads_of(AutoConfig.from_pretrained(model_path))[task]
        kwargs = {"num_labels": NUM_LABELS[task]} if NUM_LABELS[task] else {}
        model = head.from_pretrained(model_path, attn_implementation=hf_implementation(name), dtype=dtype, **kwargs).to(
            device
        )
    return LoadedModel(name, model.eval())


def load_like(baseline: LoadedModel, name: str, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    """A model of another attention implementation carrying the baseline's weights.

    Built without the random initialisation that load_state_dict then overwrites (0.15-0.4 s a
    model on the CPU for the tiny and mini presets); the strict load leaves no weight unset."""
    head = type(baseline.model)
    config = copy.deepcopy(baseline.model.config)
    with device, no_init_weights():
        model = head._from_config(config, attn_implementation=hf_implementation(name), dtype=dtype)
    model.load_state_dict(baseline.model.state_dict())
    loaded = LoadedModel(name, model.eval())
    if model.config is baseline.model.config or loaded.runs != hf_implementation(name):
        raise RuntimeError(f"{name}: model runs {loaded.runs!r}, not {hf_implementation(name)!r}")
    return loaded


def task_logits(task: str, output) -> list[torch.Tensor]:
    """The outputs compared for parity: one (batch, ...) tensor per logit kind."""
    if task == "qa":
        return [output.start_logits, output.end_logits]
    return [output.logits]


def per_token(task: str) -> bool:
    """Whether the task's logits have a sequence axis (compared on real tokens only)."""
    return task != "classification"
