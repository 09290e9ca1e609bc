"""Precision by the hardware: bf16 on a CPU only where its matmuls are native, with both branches faked."""

import pytest
import torch

from tinyr1.infra import cpu_features
from tinyr1.models import precision
from tinyr1.models.precision import choose_precision

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU policy; a GPU decides by itself")


@pytest.fixture
def fake_cpu(monkeypatch):
    """Pretend to be a CPU whose oneDNN probe says ``mkldnn``, whose /proc/cpuinfo lists ``flags`` (default: the
    bf16 instructions exactly when the probe says yes) and whose bf16 matmul runs ``speedup`` x fp32."""

    def fake(mkldnn: bool, speedup: float, flags="default"):
        flags = ({"avx512f", "avx512_bf16"} if mkldnn else {"avx2"}) if flags == "default" else flags
        monkeypatch.delenv("TINYR1_CPU_BF16", raising=False)
        monkeypatch.setattr(cpu_features, "mkldnn_bf16", lambda: mkldnn)
        monkeypatch.setattr(cpu_features, "cpu_flags", lambda: flags)
        monkeypatch.setattr(cpu_features, "measure_speedup", lambda *a, **k: speedup)
        cpu_features.cpu_bf16.cache_clear()
        return cpu_features.cpu_bf16()

    yield fake
    cpu_features.cpu_bf16.cache_clear()


def test_avx512_bf16_cpu_trains_in_bf16_autocast(fake_cpu):
    info = fake_cpu(mkldnn=True, speedup=4.6)
    assert info.native and "4.60x" in info.reason
    plan = choose_precision()
    assert (plan.dtype, plan.bf16) == (torch.float32, True)  # autocast over fp32 master weights
    assert "bf16 autocast over fp32 weights" in plan.reason and "4.60x" in plan.reason
    # generation-only commands stay fp32 unless asked: decode is bound by reading weights
    assert choose_precision(training=False).dtype == torch.float32
    assert choose_precision("bf16", training=False).dtype == torch.bfloat16


def test_avx2_cpu_trains_in_fp32(fake_cpu):
    info = fake_cpu(mkldnn=False, speedup=0.15)
    assert not info.native and "no native bf16" in info.reason
    plan = choose_precision()
    assert (plan.dtype, plan.bf16) == (torch.float32, False) and "fp32" in plan.reason


def test_the_decision_is_the_cpus_not_the_load(fake_cpu):
    # Identical commands on one machine, timed idle and under load: the same precision, the timing only recorded.
    idle, loaded = fake_cpu(mkldnn=True, speedup=6.2), fake_cpu(mkldnn=True, speedup=0.9)
    assert idle.native and loaded.native and "0.90x" in loaded.reason and "not the decision" in loaded.reason
    assert fake_cpu(mkldnn=False, speedup=3.0).native is False  # a fast timing never turns bf16 on either


def test_a_probe_without_the_instruction_flags_is_fp32(fake_cpu):
    info = fake_cpu(mkldnn=True, speedup=1.5, flags={"avx512f", "avx2"})  # oneDNN would emulate bf16
    assert not info.native and info.bf16_flags == [] and "lists no avx512_bf16/amx_bf16 flag" in info.reason
    assert fake_cpu(mkldnn=True, speedup=1.5, flags={"amx_bf16"}).native
    unreadable = fake_cpu(mkldnn=True, speedup=1.5, flags=None)  # no /proc/cpuinfo (macOS): the probe decides
    assert unreadable.native and unreadable.bf16_flags is None


def test_cpu_flags_reads_this_machines_cpuinfo():
    flags = cpu_features.cpu_flags()
    assert flags is None or (isinstance(flags, set) and flags)


def test_fp32_is_never_called_requested_unless_asked(fake_cpu):
    from types import SimpleNamespace

    from tinyr1.models.precision import training_request

    fake_cpu(mkldnn=False, speedup=0.2)  # the default on such a CPU is bf16 false: nothing was asked
    plan = choose_precision(training_request(SimpleNamespace(fp16=False, bf16=False), "auto"))
    assert plan.bf16 is False and "requested" not in plan.reason and "auto: no native bf16" in plan.reason
    fake_cpu(mkldnn=True, speedup=3.0)  # here bf16 is the default, so --bf16 false was a request
    plan = choose_precision(training_request(SimpleNamespace(fp16=False, bf16=False), "auto"))
    assert plan.bf16 is False and "fp32 on CPU (requested)" in plan.reason
    assert "requested" not in choose_precision(training_request(SimpleNamespace(fp16=False, bf16=True), None)).reason


def test_the_environment_override_keeps_working(fake_cpu, monkeypatch):
    fake_cpu(mkldnn=False, speedup=0.2)
    for value, native in (("1", True), ("0", False)):
        monkeypatch.setenv("TINYR1_CPU_BF16", value)
        cpu_features.cpu_bf16.cache_clear()
        info = cpu_features.cpu_bf16()
        assert info.native is native and info.reason == f"TINYR1_CPU_BF16={value}"


def test_explicit_bf16_on_a_slow_cpu_is_honoured_with_a_warning(fake_cpu):
    fake_cpu(mkldnn=False, speedup=0.25)
    plan = choose_precision("bf16")
    assert plan.bf16
    warning = plan.reason.splitlines()[-1]
    assert warning.startswith("warning: bf16=True") and "4.0x slower" in warning


def test_train_and_sft_defaults_follow_the_cpu(fake_cpu):
    from tinyr1.commands import sft, train

    fake_cpu(mkldnn=False, speedup=0.15)
    for command in (train, sft):
        training = command.parse_args(["--model_name_or_path", "x"]).args
        assert training.bf16 is False and training.mixed_precision == "no" and training.use_cpu
        assert not training.activation_checkpointing and not training.gradient_checkpointing
    fake_cpu(mkldnn=True, speedup=3.0)
    for command in (train, sft):
        assert command.parse_args(["--model_name_or_path", "x"]).args.bf16 is True
        assert command.parse_args(["--model_name_or_path", "x", "--bf16", "false"]).args.bf16 is False  # asked


def test_environment_override_and_the_real_probe(monkeypatch):
    monkeypatch.delenv("TINYR1_CPU_BF16", raising=False)
    cpu_features.cpu_bf16.cache_clear()
    info = cpu_features.cpu_bf16()  # this machine, whatever it is: the rule applied to its own probe and flags
    assert info.speedup > 0 and info.cpu_name and info.capability
    assert info.native == (info.mkldnn_bf16 and info.bf16_flags != [])  # the CPU decides, never the timing
    assert f"{info.speedup:.2f}x" in info.reason and "TINYR1_CPU_BF16" not in info.reason
    for forced, native in (("1", True), ("0", False)):  # the override wins over the probe, either way
        monkeypatch.setenv("TINYR1_CPU_BF16", forced)
        cpu_features.cpu_bf16.cache_clear()
        overridden = cpu_features.cpu_bf16()
        assert overridden.native is native and overridden.reason == f"TINYR1_CPU_BF16={forced}"
        assert overridden.mkldnn_bf16 == info.mkldnn_bf16 and overridden.capability == info.capability
    cpu_features.cpu_bf16.cache_clear()


def test_a_bad_override_is_one_clear_error(monkeypatch):
    from tinyr1.infra.errors import TinyR1Error

    monkeypatch.setenv("TINYR1_CPU_BF16", "yes")
    cpu_features.cpu_bf16.cache_clear()
    with pytest.raises(TinyR1Error, match="TINYR1_CPU_BF16='yes': use 1"):
        cpu_features.cpu_bf16()
    cpu_features.cpu_bf16.cache_clear()


def test_the_trainers_flags_map_to_auto_fp32_or_an_explicit_bf16(fake_cpu):
    from types import SimpleNamespace

    from tinyr1.models.precision import training_request

    fake_cpu(mkldnn=True, speedup=3.0)
    assert training_request(SimpleNamespace(fp16=False, bf16=True), "auto") == "auto"  # the automatic choice
    assert training_request(SimpleNamespace(fp16=False, bf16=False), "auto") == "fp32"  # --bf16 false is fp32
    auto = training_request(SimpleNamespace(fp16=False, bf16=True), None)
    assert "(auto: native bf16" in choose_precision(auto).reason
    fake_cpu(mkldnn=False, speedup=0.2)
    assert training_request(SimpleNamespace(fp16=False, bf16=True), "auto") == "bf16"  # explicit: warned


def test_full_training_on_a_bf16_gpu_keeps_fp32_master_weights(monkeypatch):
    """Pure-bf16 AdamW loses GRPO-sized steps: on an H200, 4 steps at lr 5e-6 changed 0.7% of a bf16 model's
    weights (99.9% in fp32). A frozen LoRA base and generation-only commands stay in bf16."""

    monkeypatch.setattr(precision, "default_device", lambda: "cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    full = choose_precision()
    assert (full.dtype, full.bf16, full.fp16) == (torch.float32, True, False)
    assert "bf16 autocast over fp32 master weights" in full.reason
    assert choose_precision("bf16").dtype == torch.float32
    assert (choose_precision(lora=True).dtype, choose_precision(lora=True).bf16) == (torch.bfloat16, True)
    assert choose_precision(training=False).dtype == torch.bfloat16


def test_a_small_lora_update_survives_cpu_bf16_autocast_once_its_sum_is_fp32():
    # A LoRA's first updates are tiny next to the frozen layer's output. peft adds the two in the frozen output's
    # dtype, bf16 under autocast, where they round away; keep_adapter_sums_fp32 makes that sum fp32.
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Linear(64, 64))
    model = get_peft_model(layer, LoraConfig(r=4, lora_alpha=8, target_modules=["0"]))
    with torch.no_grad():
        model.base_model.model[0].lora_B["default"].weight.fill_(2e-4)  # an Adam step or two at lr ~1e-4
    x = torch.randn(32, 64) * 4

    def change(autocast: bool) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            adapted = model(x)
            with model.disable_adapter():
                frozen = model(x)
        return (adapted.float() - frozen.float()).flatten()

    want = change(False)  # fp32: the adapter's whole contribution
    assert want.abs().min() > 0
    rounded = change(True)
    assert (rounded == 0).float().mean() > 0.5  # most of the update is invisible to the loss
    assert precision.keep_adapter_sums_fp32(model) == 1 and precision.keep_adapter_sums_fp32(model) == 0
    kept = change(True)
    assert (kept == 0).float().mean() == 0
    assert torch.allclose(kept, want, rtol=0.02, atol=2e-3 * want.abs().max())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(x).float().square().mean().backward()
    assert model.base_model.model[0].lora_B["default"].weight.grad.abs().sum() > 0
