"""Partitioned weights (ZeRO-3) on one process: the pad token's check reads the embedding's full rows, and what
decides an in-memory LoRA merge. The two-process ZeRO-3 run itself is tests/training/test_zero3.py."""

import torch

from tinyr1.models import whole_weights
from tinyr1.models.loading import ensure_pad_token, load_model, load_tokenizer

from ..conftest import ASSETS

TINY = str(ASSETS / "tiny-qwen2")


def partition(model) -> None:
    """What ZeRO-3 leaves in a process: every parameter's local slice empty, its full shape in ``ds_shape``."""
    for param in model.parameters():
        param.ds_shape, param.ds_id = param.shape, id(param)
        param.data = torch.empty(0, dtype=param.dtype)


def test_the_pad_token_check_never_shrinks_a_partitioned_vocabulary(monkeypatch):
    model, tokenizer = load_model(TINY, device=None), load_tokenizer(TINY)
    model.resize_token_embeddings(len(tokenizer) + 64)  # padded rows beyond the tokenizer's, as Qwen2.5's
    partition(model)
    assert whole_weights.is_partitioned(model) and whole_weights.rows(model.get_input_embeddings().weight) == 1088
    resized = []
    monkeypatch.setattr(model, "resize_token_embeddings", lambda n, *a, **k: resized.append(n))
    ensure_pad_token(tokenizer, model)
    assert resized == []  # before: resize to len(tokenizer) = 1024, as the local slice had 0 rows
    tokenizer.add_special_tokens({"additional_special_tokens": [f"<extra{i}>" for i in range(70)]})
    ensure_pad_token(tokenizer, model)
    assert resized == [len(tokenizer)]  # more tokens than rows: grown, as without ZeRO-3


def test_a_merge_is_made_from_files_only_for_partitioned_or_quantized_weights():
    model = load_model(TINY, device=None)
    assert not whole_weights.needs_merge_from_files(model)
    model.is_loaded_in_4bit = True
    assert whole_weights.needs_merge_from_files(model)
    model = load_model(TINY, device=None)
    partition(model)
    assert whole_weights.needs_merge_from_files(model)
