"""Model resolution, pad tokens, precision policy and the offline SmolLM2 alias."""

import json
import shutil

import pytest
import torch

from tinyr1.infra.errors import TinyR1Error
from tinyr1.models import loading as models
from tinyr1.models.loading import ensure_pad_token, load_model_and_tokenizer, resolve_model
from tinyr1.models.precision import choose_precision

from ..conftest import ASSETS

TINY = ASSETS / "tiny-qwen2"


def test_local_hub_and_missing_paths(tmp_path):
    assert resolve_model(str(TINY)).kind == "local"
    assert resolve_model("Qwen/Qwen2.5-0.5B-Instruct").kind == "hub"  # not fetched: resolving is offline
    for missing in (str(tmp_path / "nope"), "./nope", str(tmp_path / "m.gguf")):
        with pytest.raises(TinyR1Error, match="does not exist"):
            resolve_model(missing)
    with pytest.raises(TinyR1Error, match="not a model folder"):
        resolve_model(str(tmp_path))


def test_run_folder_resolves_to_newest_complete_checkpoint(tmp_path):
    for step in (2, 10):
        shutil.copytree(TINY, tmp_path / f"checkpoint-{step}")
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(f'{{"global_step": {step}}}')
    shutil.copytree(TINY, tmp_path / "checkpoint-12")  # half-written: no trainer_state.json yet
    assert resolve_model(str(tmp_path)).path == str(tmp_path / "checkpoint-10")


def test_adapter_folder_loads_base_plus_adapter(tmp_path):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load_model_and_tokenizer(str(TINY))
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    peft_model.save_pretrained(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(TINY)
    resolved = resolve_model(str(tmp_path / "adapter"))
    assert (resolved.kind, resolved.path, resolved.adapter) == ("adapter", str(TINY), str(tmp_path / "adapter"))
    loaded = models.load_model(str(tmp_path / "adapter"), merge_adapter=True)
    assert not hasattr(loaded, "peft_config") and isinstance(loaded, torch.nn.Module)
    assert all(p.requires_grad for p in loaded.parameters())  # GRPO from an SFT adapter must be able to step


def test_pad_token_is_distinct_from_eos_and_left_padded():
    model, tokenizer = load_model_and_tokenizer(str(TINY))
    assert tokenizer.pad_token_id != tokenizer.eos_token_id and tokenizer.padding_side == "left"
    assert model.config.pad_token_id == tokenizer.pad_token_id
    # A tokenizer whose pad is eos gets a distinct one, and the message says so.
    tokenizer.pad_token = tokenizer.eos_token
    message = ensure_pad_token(tokenizer, model)
    assert "distinct from eos" in message and tokenizer.pad_token != tokenizer.eos_token


def test_precision_refusals():
    """The CPU's automatic choice is tested in test_precision.py; these hold on every machine."""
    with pytest.raises(TinyR1Error, match="overflow fp16.*'!'"):
        choose_precision("fp16", model_type="qwen2")
    with pytest.raises(TinyR1Error, match="dtype 'int8'"):
        choose_precision("int8")
    assert choose_precision("float32").reason.startswith("precision: fp32")
    assert "(requested)" in choose_precision("float32").reason


@pytest.mark.slow
def test_smollm2_alias_loads_offline_and_generates_finite_logits():
    model, tokenizer = load_model_and_tokenizer(models.SMOLLM2_ALIAS)
    assert resolve_model(models.SMOLLM2_ALIAS).kind == "alias"
    assert "<|im_start|>" in tokenizer.chat_template
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+3?"}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=8, do_sample=False, output_scores=True, return_dict_in_generate=True)
    assert all(torch.isfinite(score).all() for score in out.scores)
    assert tokenizer.decode(out.sequences[0, ids["input_ids"].shape[1]:]).strip()
