"""What a training run needs in memory, estimated from the model's shape before anything loads (``tinyr1 doctor``).

The shape comes from a local config (exact: the model built on the meta device) or, for a hub model this machine
does not have, from ``KNOWN_PARAMS`` and the shape of a typical model of that size.
"""

from __future__ import annotations

# Parameter counts for models a recipe names but this machine may not have (offline estimates).
KNOWN_PARAMS = {"Qwen/Qwen2.5-0.5B-Instruct": 494e6, "Qwen/Qwen2.5-1.5B-Instruct": 1.54e9,
                "deepseek-ai/DeepSeek-R1-Distill-Llama-8B": 8.03e9, "HuggingFaceTB/SmolLM2-135M-Instruct": 135e6}


def estimate_memory(params: float, hidden: int, layers: int, vocab: int, tokens: int, bytes_per: int,
                    lora: bool, four_bit: bool, checkpointing: bool) -> dict:
    """Rough peak training memory in bytes: weights, gradients, AdamW states, activations and logits.

    ``bytes_per`` is the compute dtype's size. Trained weights are fp32 whatever it is (master weights, as
    ``models.choose_precision`` loads them), a frozen LoRA base is in the compute dtype. Activations follow
    Korthikanti et al.'s ~34 bytes x hidden per token per layer at 16-bit (about 2 with checkpointing), scaled to
    the dtype; logits and their gradient take 2 x vocab x 4 bytes per token.

    The recipe's Qwen2.5-0.5B run (bf16, 16 completions x 456 tokens per micro-batch) is dominated by logits:

    >>> round(estimate_memory(494e6, 896, 24, 151936, 16 * 456, 2, False, False, True)["total"] / 2**30, 1)
    15.9
    """
    weights = params * (0.55 if four_bit else (bytes_per if lora else 4))
    trainable = params * 0.01 if lora else params
    gradients = trainable * 4
    optimizer = trainable * 8  # two fp32 AdamW moments
    activations = tokens * layers * hidden * (2 if checkpointing else 34) * bytes_per / 2
    logits = tokens * vocab * 4 * 2
    parts = {"weights": weights, "gradients": gradients, "optimizer": optimizer, "activations": activations,
             "logits": logits}
    return {**parts, "total": sum(parts.values())}


def model_shape(name: str, local: str | None) -> dict | None:
    """Parameters and sizes from a local config (exact, built on the meta device) or the known table."""
    if local:
        from accelerate import init_empty_weights
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(local)
        with init_empty_weights():
            params = AutoModelForCausalLM.from_config(config).num_parameters()
        return {"params": params, "hidden": config.hidden_size, "layers": config.num_hidden_layers,
                "vocab": config.vocab_size}
    if name in KNOWN_PARAMS:  # shape of a typical model of that size: enough for an estimate
        params = KNOWN_PARAMS[name]
        hidden, layers = (896, 24) if params < 1e9 else ((1536, 28) if params < 4e9 else (4096, 32))
        return {"params": params, "hidden": hidden, "layers": layers, "vocab": 151936 if "Qwen" in name else 128256}
    return None
