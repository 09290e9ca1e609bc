"""Local stand-ins for the hub repositories trl's trainer tests load, so the tests run offline.

Models and tokenizers go into a private Hugging Face cache (`<dir>/hf_home/hub/models--org--name/snapshots/...`)
that transformers reads with HF_HUB_OFFLINE=1, so every load (the test's own, and trl's internal ones from a model
id) finds them without any patching. Datasets go into plain folders with a README listing their configs; the
pytest plugin points `datasets.load_dataset` at them (datasets cannot read a hub cache snapshot offline).

Each model is a randomly initialised two-layer network of the named architecture in bf16, as trl's own tiny test
models are, with a small byte-level BPE tokenizer (tests/assets/tiny-qwen2's) carrying the family's special tokens
and the family's original chat template as trl ships it (trl recognises a model's template by exact comparison).
Rows come from the Zen of Python (`import this`), the source trl's "zen" dataset is written from, in every
config the tests ask for, split 17 train / 2 test as the original.
"""

import ast
import contextlib
import hashlib
import io
import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASE_TOKENIZER = REPO / "tests" / "assets" / "tiny-qwen2" / "tokenizer.json"
VERSION = "5"  # bump when a stand-in changes, so a cached build is rebuilt
COMMIT = "0" * 39 + "1"  # the snapshot hash every stand-in repository is stored under

# Qwen2.5's added tokens in id order from 151643 (Qwen3 appends four), Llama 3's from 128000. With `full_vocab` the
# stand-ins have the real vocabulary size and these ids (ids the small BPE does not use are unreachable fillers):
# two tests hard-code Qwen's ids (a mocked generate returns 151645 as EOS) or rely on EOS being as rare in random
# sampling as in a 151k vocabulary. Each training test then takes several times longer on a CPU (the logits of every
# sampled token span the whole vocabulary), so by default the vocabulary is compact: the BPE's 1,021 tokens, then
# the special tokens in their real order (those whose real id is free there keep it).
QWEN25_ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
                "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]
QWEN3_ADDED = QWEN25_ADDED + ["<tool_response>", "</tool_response>", "<think>", "</think>"]
QWEN25 = dict(specials={t: 151643 + i for i, t in enumerate(QWEN25_ADDED)}, eos="<|im_end|>", pad="<|endoftext|>",
              bos=None, template="qwen2_5")
QWEN3 = dict(specials={t: 151643 + i for i, t in enumerate(QWEN3_ADDED)}, eos="<|im_end|>", pad="<|endoftext|>",
             bos=None, template="qwen3")
LLAMA32 = dict(specials={"<|begin_of_text|>": 128000, "<|end_of_text|>": 128001, "<|finetune_right_pad_id|>": 128004,
                         "<|start_header_id|>": 128006, "<|end_header_id|>": 128007, "<|eom_id|>": 128008,
                         "<|eot_id|>": 128009, "<|python_tag|>": 128010},
               size=128256, eos="<|eot_id|>", pad=None, bos="<|begin_of_text|>", add_bos=True, template="llama3_2")
# Mistral-7B-Instruct-v0.2 formats turns as `[INST] ... [/INST]`; trl ships no copy of its template.
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}"
)
MISTRAL02 = dict(specials={"<unk>": 0, "<s>": 1, "</s>": 2}, size=32000, eos="</s>", pad=None, bos="<s>", unk="<unk>",
                 add_bos=True, template_text=MISTRAL_TEMPLATE)
# Gemma 2's template refuses a system message, as the real one does.
GEMMA2 = dict(specials={"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4, "<start_of_turn>": 106,
                        "<end_of_turn>": 107}, size=256000, eos="<eos>", pad="<pad>", bos="<bos>", unk="<unk>",
              add_bos=True, template="gemma")
# Pythia's tokenizer has no chat template: a test sets one from a file.
GPTNEOX = dict(specials={"<|endoftext|>": 0, "<|padding|>": 1}, size=50277, eos="<|endoftext|>", pad=None,
               bos="<|endoftext|>")
SMALL = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
QWEN3_SHAPE = {"head_dim": 4}

# hub id -> (model_type, head, tokenizer family, extra config)
MODELS = {
    "trl-internal-testing/tiny-Qwen2ForCausalLM-2.5": ("qwen2", "causal", QWEN25, {}),
    "trl-internal-testing/tiny-Qwen2ForSequenceClassification-2.5": ("qwen2", "seqcls", QWEN25, {}),
    "trl-internal-testing/tiny-Qwen3ForCausalLM": ("qwen3", "causal", QWEN3, QWEN3_SHAPE),
    "trl-internal-testing/tiny-Qwen3ForSequenceClassification": ("qwen3", "seqcls", QWEN3, QWEN3_SHAPE),
    "trl-internal-testing/tiny-Qwen3MoeForCausalLM": (
        "qwen3_moe", "causal", QWEN3,
        dict(QWEN3_SHAPE, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16)),
    "trl-internal-testing/tiny-LlamaForCausalLM-3.2": ("llama", "causal", LLAMA32, {}),
    "trl-internal-testing/tiny-LlamaForSequenceClassification-3.2": ("llama", "seqcls", LLAMA32, {}),
    "trl-internal-testing/tiny-MistralForCausalLM-0.2": ("mistral", "causal", MISTRAL02, {}),
    "trl-internal-testing/tiny-Gemma2ForCausalLM": ("gemma2", "causal", GEMMA2, {"head_dim": 4}),
    "trl-internal-testing/tiny-GPTNeoXForCausalLM": ("gpt_neox", "causal", GPTNEOX, {}),
}


def zen_lines() -> list[str]:
    import codecs

    with contextlib.redirect_stdout(io.StringIO()):
        import this
    text = codecs.decode(this.s, "rot13")
    return [line for line in text.splitlines()[2:] if line.strip()]


def zen_configs() -> dict[str, dict[str, list]]:
    """Every config of the zen dataset the tests load, with the original's columns."""
    lines = zen_lines()
    halves = []
    for line in lines:
        words = line.split(" ")
        cut = max(1, len(words) // 2)
        halves.append((" ".join(words[:cut]), " " + " ".join(words[cut:])))
    prompts = [p for p, _ in halves]
    completions = [c for _, c in halves]
    rejected = [" " + " ".join(reversed(c.split())) for c in completions]
    labels = [i % 3 != 1 for i in range(len(lines))]

    def user(text):
        return [{"role": "user", "content": text}]

    def assistant(text):
        return [{"role": "assistant", "content": text.strip()}]

    questions = [f"How does this line of the Zen of Python end: {p}" for p in prompts]
    return {
        "standard_language_modeling": {"text": lines},
        "standard_prompt_only": {"prompt": prompts},
        "standard_prompt_completion": {"prompt": prompts, "completion": completions},
        "standard_preference": {"prompt": prompts, "chosen": completions, "rejected": rejected},
        "standard_implicit_prompt_preference": {
            "chosen": lines, "rejected": [p + r for p, r in zip(prompts, rejected, strict=True)]},
        "standard_unpaired_preference": {"prompt": prompts, "completion": completions, "label": labels},
        "standard_stepwise_supervision": {"prompt": prompts, "completions": [[c] for c in completions],
                                          "labels": [[lab] for lab in labels]},
        "conversational_language_modeling": {
            "messages": [user(q) + assistant(a) for q, a in zip(questions, lines, strict=True)]},
        "conversational_prompt_only": {"prompt": [user(q) for q in questions]},
        "conversational_prompt_completion": {"prompt": [user(q) for q in questions],
                                             "completion": [assistant(a) for a in lines]},
        "conversational_preference": {
            "prompt": [user(q) for q in questions], "chosen": [assistant(a) for a in lines],
            "rejected": [assistant(p + r) for p, r in zip(prompts, rejected, strict=True)]},
        "conversational_implicit_prompt_preference": {
            "chosen": [user(q) + assistant(a) for q, a in zip(questions, lines, strict=True)],
            "rejected": [user(q) + assistant(p + r) for q, p, r in zip(questions, prompts, rejected, strict=True)]},
        "conversational_unpaired_preference": {"prompt": [user(q) for q in questions],
                                               "completion": [assistant(a) for a in lines], "label": labels},
    }


def zen_from_generator(source: str) -> dict[str, dict[str, list]]:
    """The rows of each config as trl's own generator script (scripts/generate_zen_dataset.py) writes them.

    Read, not run: the script's `Dataset.from_dict({...})` literals, keyed by the `config_name` it pushes them under.
    Some tests compare prompts with the original rows' text, which only the original rows satisfy.
    """
    columns_of, configs = {}, {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and node.value.args:
            call = node.value
            if isinstance(call.func, ast.Attribute) and call.func.attr == "from_dict":
                with contextlib.suppress(ValueError, TypeError, SyntaxError):
                    columns_of[node.targets[0].id] = ast.literal_eval(call.args[0])
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "push_to_hub":
            names = [k.value.value for k in node.keywords if k.arg == "config_name"]
            owner = node.func.value
            if names and isinstance(owner, ast.Name) and owner.id in columns_of:
                configs[names[0]] = columns_of[owner.id]
    return configs


def write_dataset(folder: Path, configs: dict[str, dict[str, list]]) -> None:
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    readme = ["---", "configs:"]
    for name, columns in configs.items():
        splits = Dataset.from_dict(columns).train_test_split(test_size=0.1, shuffle=False)
        readme += [f"- config_name: {name}", "  data_files:"]
        for split, rows in splits.items():
            (folder / name).mkdir(parents=True, exist_ok=True)
            rows.to_parquet(str(folder / name / f"{split}-00000-of-00001.parquet"))
            readme += [f"  - split: {split}", f"    path: {name}/{split}-*"]
    (folder / "README.md").write_text("\n".join(readme + ["---", ""]), encoding="utf-8")


def make_tokenizer(family: dict, full_vocab: bool = False):
    """tests/assets' byte-level BPE, renumbered so the family's special tokens sit at the real model's ids."""
    import trl
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    base = json.loads(BASE_TOKENIZER.read_text(encoding="utf-8"))
    base_specials = {token["content"] for token in base["added_tokens"]}
    ordinary = [t for t, _ in sorted(base["model"]["vocab"].items(), key=lambda kv: kv[1]) if t not in base_specials]
    specials = family["specials"]
    size = max(family.get("size", 0), max(specials.values()) + 1)
    if not full_vocab:
        size = len(ordinary) + len(specials)
        moved = sorted((i, t) for t, i in specials.items() if i >= size)
        kept = {t: i for t, i in specials.items() if i < size}
        room = (i for i in range(size - 1, -1, -1) if i not in kept.values())
        ends = sorted(next(room) for _ in moved)
        specials = {**kept, **{t: i for (_, t), i in zip(moved, ends, strict=True)}}
    taken = set(specials.values())
    free = (i for i in range(size) if i not in taken)
    vocab = dict(specials)
    vocab.update(zip(ordinary, free, strict=False))
    vocab.update((f"<|filler_{i}|>", i) for i in free)  # never produced: no merge leads to them
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in base["model"]["merges"]]
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    if family.get("add_bos"):
        # Llama 3's, Mistral's and Gemma's tokenizers put the BOS token in front of every encoded text.
        bos = (family["bos"], specials[family["bos"]])
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos[0]} $A", pair=f"{bos[0]} $A {bos[0]} $B", special_tokens=[bos])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=family["eos"], pad_token=family["pad"],
                                        bos_token=family["bos"], unk_token=family.get("unk"))
    if family.get("template"):
        template = Path(trl.__file__).parent / "chat_templates" / f"{family['template']}.jinja"
        tokenizer.chat_template = template.read_text(encoding="utf-8")
    elif family.get("template_text"):
        tokenizer.chat_template = family["template_text"]
    return tokenizer


def make_model(model_type: str, head: str, tokenizer, extra: dict):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, GenerationConfig

    ids = dict(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
               bos_token_id=tokenizer.bos_token_id)
    config = AutoConfig.for_model(model_type, vocab_size=len(tokenizer), **SMALL, **extra, **ids,
                                  tie_word_embeddings=False)
    if head == "seqcls":
        config.num_labels = 1
    torch.manual_seed(0)
    auto = AutoModelForSequenceClassification if head == "seqcls" else AutoModelForCausalLM
    model = auto.from_config(config).to(torch.bfloat16)
    if head == "causal":
        model.generation_config = GenerationConfig(**ids)
    return model


def hub_snapshot(hub: Path, kind: str, repo_id: str) -> Path:
    root = hub / f"{kind}--{repo_id.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT, encoding="utf-8")
    snapshot = root / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def build(target: Path, zen_generator: str | None = None, full_vocab: bool = False) -> dict:
    """Build every stand-in under `target` (reused when its manifest matches); return the manifest.

    `zen_generator`: the source of trl's scripts/generate_zen_dataset.py at the tested revision; its rows replace
    the ones written here from `import this`, config by config.
    """
    key = VERSION + ("-full" if full_vocab else "") + (
        hashlib.sha1(zen_generator.encode()).hexdigest() if zen_generator else "")
    manifest_path = target / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("version") == key:
            return manifest
    if target.exists():
        shutil.rmtree(target)
    from transformers.utils import logging

    logging.disable_progress_bar()
    hub = target / "hf_home" / "hub"
    models = []
    for repo_id, (model_type, head, family, extra) in MODELS.items():
        snapshot = hub_snapshot(hub, "models", repo_id)
        tokenizer = make_tokenizer(family, full_vocab)
        make_model(model_type, head, tokenizer, extra).save_pretrained(snapshot)
        tokenizer.save_pretrained(snapshot)
        models.append(repo_id)
    datasets = {"trl-internal-testing/zen": str(target / "datasets" / "zen")}
    configs = zen_configs()
    original = zen_from_generator(zen_generator) if zen_generator else {}
    configs.update(original)
    write_dataset(Path(datasets["trl-internal-testing/zen"]), configs)
    manifest = {"version": key, "full_vocab": full_vocab, "hf_home": str(target / "hf_home"), "models": models,
                "datasets": datasets, "zen_configs_from_trl_generator": sorted(original)}
    manifest_path.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


if __name__ == "__main__":
    import sys

    source = Path(sys.argv[2]).read_text(encoding="utf-8") if len(sys.argv) > 2 else None
    print(json.dumps(build(Path(sys.argv[1]), source, "--full-vocab" in sys.argv), indent=1))
