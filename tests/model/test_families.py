"""The BERT-family encoders (model.families): each family's presets, task heads, pad id and
checkpoints, and eager / sdpa / flex parity on the CPU."""

from __future__ import annotations

import pytest
import torch

from bertbench.measure.probes import agreement
from bertbench.model import families
from bertbench.model.batches import make_batch
from bertbench.model.capture import graph_ready, prepared_inputs
from bertbench.model.heads import (
    load_baseline,
    load_config,
    load_like,
    per_token,
    preset_config,
    task_logits,
)
from bertbench.spec import catalog
from bertbench.spec.catalog import FAMILY_PRESETS, NUM_LABELS, TASKS

CPU = torch.device("cpu")
OTHERS = ("roberta", "distilbert", "electra", "modernbert")  # beside BERT, whose tests are test_models.py
# ModernBERT's local layers see 64 tokens either side: longer sequences than that, so the window counts
SEQLEN, AVG = 96, 72


def batch_for(loaded, task: str, seed: int = 0, use_mask: bool = True):
    config = loaded.model.config
    pad = families.pad_id(config)
    return make_batch(task, 3, SEQLEN, AVG, 16, config.vocab_size, NUM_LABELS[task], use_mask, seed, "cpu", pad_id=pad)


def parity(task: str, want, got, batch) -> tuple[float, float]:
    real = batch.attention_mask.bool() if per_token(task) else None
    return agreement(task_logits(task, got), task_logits(task, want), real)


def test_every_family_has_a_head_for_every_task_and_a_catalog_entry():
    assert set(families.FAMILIES) == set(catalog.FAMILIES) == {"bert", *OTHERS}
    for name, family in families.FAMILIES.items():
        assert family.spec is catalog.FAMILIES[name] and set(family.heads) == set(TASKS)
        assert {f"{name}-tiny", f"{name}-base"} <= set(FAMILY_PRESETS) or name == "bert"


@pytest.mark.parametrize(
    ("size", "shape"),
    [  # (layers, hidden, heads, intermediate) as the family's base checkpoint has them
        ("roberta-base", (12, 768, 12, 3072)),
        ("distilbert-base", (6, 768, 12, 3072)),
        ("electra-base", (12, 768, 12, 3072)),
        ("modernbert-base", (22, 768, 12, 1152)),
    ],
)
def test_base_presets_have_their_checkpoints_shape(size, shape):
    config = families.preset_config(size)
    inner = getattr(config, "intermediate_size", None) or config.hidden_dim
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads, inner) == shape
    assert families.family_of(config).name == size.split("-")[0]


def test_each_familys_own_pad_id_positions_and_token_types():
    roberta = families.preset_config("roberta-base")
    assert (roberta.vocab_size, roberta.max_position_embeddings, roberta.pad_token_id) == (50265, 514, 1)
    assert families.position_offset(roberta) == 2 and families.pad_id(roberta) == 1
    modern = families.preset_config("modernbert-base")
    assert modern.layer_types[:3] == ["full_attention", "sliding_attention", "sliding_attention"]
    assert modern.sliding_window == 64 and families.pad_id(modern) == modern.pad_token_id == 50283
    for name in ("bert", "distilbert", "electra", "modernbert"):
        assert families.position_offset(families.preset_config(f"{name}-tiny" if name != "bert" else "tiny")) == 0
    assert [n for n, f in catalog.FAMILIES.items() if not f.token_types] == ["distilbert", "modernbert"]
    # the usable positions the command line checks: RoBERTa's 514 less its pad offset
    assert catalog.FAMILIES["roberta"].positions == roberta.max_position_embeddings - 2


def test_a_batch_pads_with_the_models_pad_id_and_never_draws_it_as_a_real_token():
    bert = make_batch("mlm", 6, 40, 20, 10, 50265, 0, True, 3, "cpu")
    assert torch.equal(make_batch("mlm", 6, 40, 20, 10, 50265, 0, True, 3, "cpu", pad_id=0).input_ids, bert.input_ids)
    roberta = make_batch("mlm", 6, 40, 20, 10, 50265, 0, True, 3, "cpu", pad_id=1)
    real = roberta.attention_mask.bool()
    assert (roberta.input_ids[~real] == 1).all() and (roberta.input_ids[real] != 1).all()
    assert torch.equal(roberta.lengths, bert.lengths)  # the same lengths and labels' draws as BERT's batch


@pytest.mark.parametrize("family", OTHERS)
@pytest.mark.parametrize("task", TASKS)
def test_each_family_and_head_runs_eager_and_sdpa_with_the_same_weights_and_agrees(family, task):
    eager = load_baseline(task, "eager", f"{family}-tiny", None, CPU, torch.float32, seed=0)
    sdpa = load_like(eager, "sdpa", CPU, torch.float32)
    assert isinstance(eager.model, families.FAMILIES[family].heads[task]) and eager.family.name == family
    assert (eager.runs, sdpa.runs) == ("eager", "sdpa") and eager.model.config is not sdpa.model.config
    for (name, a), b in zip(eager.model.state_dict().items(), sdpa.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    batch = batch_for(eager, task)
    with torch.inference_mode():
        want, got = eager.forward(batch.model_inputs())(), sdpa.forward(batch.model_inputs())()
    assert want.loss is not None and torch.isfinite(want.loss)
    max_abs, rel = parity(task, want, got, batch)
    assert rel < 1e-5 and max_abs < 1e-4


@pytest.mark.parametrize("family", OTHERS)
def test_each_family_runs_flex_attention_on_the_cpu_and_agrees_with_eager(family):
    """flex_attention compiles on first use (seconds each on the CPU): one head per family."""
    eager = load_baseline("token_classification", "eager", f"{family}-tiny", None, CPU, torch.float32, seed=0)
    flex = load_like(eager, "flex_attention", CPU, torch.float32)
    batch = batch_for(eager, "token_classification")
    with torch.inference_mode():
        want, got = eager.forward(batch.model_inputs())(), flex.forward(batch.model_inputs())()
    max_abs, rel = parity("token_classification", want, got, batch)
    assert rel < 1e-5 and max_abs < 1e-4


def test_modernberts_local_layers_see_only_their_window():
    """With every layer global, the logits of sequences longer than the window differ: the window is real."""
    task = "token_classification"
    local = load_baseline(task, "sdpa", "modernbert-tiny", None, CPU, torch.float32, seed=0)
    config = preset_config(task, "modernbert-tiny")
    config.layer_types = ["full_attention"] * config.num_hidden_layers
    whole = families.FAMILIES["modernbert"].heads[task]._from_config(config, attn_implementation="sdpa").eval()
    whole.load_state_dict(local.model.state_dict())
    batch = batch_for(local, task)
    with torch.inference_mode():
        a, b = local.model(**batch.model_inputs()).logits, whole(**batch.model_inputs()).logits
    real = batch.attention_mask.bool()
    assert not torch.allclose(a[real], b[real], atol=1e-3)


@pytest.mark.parametrize("use_mask", [True, False])
@pytest.mark.parametrize("family", OTHERS)
def test_a_graph_ready_call_gives_the_same_logits_in_each_family(family, use_mask):
    """What --cuda-graphs captures: ModernBERT gets one mask per layer type, padded or not, or its window would go."""
    for name in ("eager", "sdpa"):
        model = load_baseline("qa", name, f"{family}-tiny", None, CPU, torch.float32, seed=0)
        inputs = batch_for(model, "qa", use_mask=use_mask).model_inputs()
        prepared = prepared_inputs(model.model, inputs)
        if family == "modernbert":
            assert set(prepared["attention_mask"]) == {"full_attention", "sliding_attention"}
        with torch.inference_mode():
            want = model.forward(inputs)()
            got, ready = model.forward(prepared)(), graph_ready(model.model, model.forward, inputs)()
        torch.testing.assert_close(got.start_logits, want.start_logits)
        torch.testing.assert_close(ready.start_logits, want.start_logits)


@pytest.fixture
def checkpoint(tmp_path):
    """A family's tiny preset saved with save_pretrained: what --model PATH loads."""

    def save(family: str, task: str = "qa"):
        model = load_baseline(task, "eager", f"{family}-tiny", None, CPU, torch.float32, seed=0).model
        path = tmp_path / family
        model.save_pretrained(path)
        return path, model

    return save


@pytest.mark.parametrize("family", OTHERS)
def test_a_local_checkpoint_of_each_family_loads_with_its_weights(checkpoint, family):
    path, saved = checkpoint(family)
    assert families.family_of(load_config(str(path), local_files_only=True)).name == family
    eager = load_baseline("qa", "eager", "tiny", str(path), CPU, torch.float32, seed=0)
    sdpa = load_like(eager, "sdpa", CPU, torch.float32)
    assert type(eager.model) is type(saved) and sdpa.runs == "sdpa"
    for (name, a), b in zip(saved.state_dict().items(), sdpa.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    # another task loads the encoder from the file with a new head of the family's class
    mlm = load_baseline("mlm", "eager", "tiny", str(path), CPU, torch.float32, seed=0)
    assert isinstance(mlm.model, families.FAMILIES[family].heads["mlm"])


def test_a_checkpoint_of_another_kind_is_refused_by_name(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=32, n_head=2).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"GPT2Config.*not a BERT-family checkpoint"):
        load_config(str(tmp_path), local_files_only=True)


def test_bert_presets_are_unchanged():
    config = preset_config("qa", "base")
    assert type(config).__name__ == "BertConfig" and config.num_labels == 2
    assert (config.num_hidden_layers, config.hidden_size, config.intermediate_size) == (12, 768, 3072)
    assert catalog.preset_name("base") == "bert-base" and catalog.preset_name("roberta-base") == "roberta-base"
