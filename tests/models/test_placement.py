"""Every command that generates puts its model on the GPU it has (``tinyr1.infra.device.model_device``, applied by
``tinyr1.models.loading.load_model``), shown with CUDA mocked: torch reports one bf16 GPU, and ``Module.to`` records
a move to a CUDA device instead of making it (this torch has no CUDA), so the model stays runnable on the CPU."""

import pytest
import torch

# imported before CUDA is mocked: bitsandbytes, imported with peft and trl, picks its backend as it loads
from tinyr1.commands import doctor, generate
from tinyr1.evaluation import compare, evaluate, probe
from tinyr1.infra import device
from tinyr1.models.loading import load_model

from ..conftest import ASSETS

TINY = str(ASSETS / "tiny-qwen2")


@pytest.fixture
def fake_cuda(monkeypatch):
    moves: list[str] = []
    real_to = torch.nn.Module.to

    def to(self, *args, **kwargs):
        target = args[0] if args else kwargs.get("device")
        if isinstance(target, (str, torch.device)) and str(target).startswith("cuda"):
            moves.append(str(target))
            return self
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.nn.Module, "to", to)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    return moves


def test_model_device_is_this_process_gpu(fake_cuda, monkeypatch):
    assert device.model_device() == "cuda:0"
    monkeypatch.setenv("LOCAL_RANK", "1")  # accelerate launch's second process on a machine
    assert device.model_device() == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.model_device() == "cpu"


def test_load_model_places_the_model_unless_a_trainer_or_device_map_does(fake_cuda):
    load_model(TINY)
    assert fake_cuda == ["cuda:0"]
    load_model(TINY, device=None)  # training: the trainer places it
    load_model(TINY, device_map={"": "cpu"})  # a device map placed it while loading
    assert fake_cuda == ["cuda:0"]


def test_eval_compare_generate_and_the_probe_run_on_the_gpu(fake_cuda, gsm8k_dir, tmp_path, capsys):
    metrics = evaluate.evaluate(TINY, dataset_name=str(gsm8k_dir), split="test", limit=1, max_new_tokens=2)
    assert metrics["n"] == 1 and fake_cuda == ["cuda:0"]
    compare.compare(TINY, TINY, output=tmp_path / "compare.md", max_new_tokens=2)
    assert fake_cuda == ["cuda:0"] * 3  # both models
    assert generate.main(["--model_name_or_path", TINY, "--prompt", "hi", "--max_new_tokens", "2"]) == 0
    assert fake_cuda == ["cuda:0"] * 4
    probe.main(["--model", TINY, "--dataset_name", str(gsm8k_dir), "--greedy_questions", "1", "--prompts", "1",
                "--k", "2", "--max_new_tokens", "2"])
    assert fake_cuda == ["cuda:0"] * 5


def test_doctor_checks_generation_on_the_gpu(fake_cuda):
    checks = doctor.Checklist()
    doctor.check_generation(checks, TINY, TINY, 1e5, {"device": "cuda", "memory": 80 * 2**30, "total": 80 * 2**30})
    assert fake_cuda == ["cuda:0"]
