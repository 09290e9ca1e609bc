"""benchmarks/seeds_table.py, the script behind docs/results.md's learning table, on evaluations written here:
verdicts scored again by tinyr1's one rule, the paired counts against the start, and refusing unpaired questions."""

import importlib.util
import json

import pytest

from .conftest import REPO


def _script():
    spec = importlib.util.spec_from_file_location("seeds_table", REPO / "benchmarks" / "seeds_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _answer(n: int) -> str:
    return f"<reasoning>\n1 + {n - 1} = {n}\n</reasoning>\n<answer>\n{n}\n</answer>"


def _eval(out, name, answers, questions=("q1", "q2", "q3", "q4")):
    folder = out / f"eval-{name}"
    folder.mkdir(parents=True)
    rows = [{"question": q, "answer": str(i), "completion": a, "num_tokens": 10, "truncated": False}
            for i, (q, a) in enumerate(zip(questions, answers, strict=True))]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_the_table_counts_each_seed_against_its_start_question_by_question(tmp_path, capsys):
    seeds_table = _script()
    _eval(tmp_path, "start", [_answer(0), "7", "7", "7"])                       # right on q1 only
    _eval(tmp_path, "recipe-s1", [_answer(0), _answer(1), _answer(2), "7"])     # +2 wrong->right
    _eval(tmp_path, "recipe-s2", ["7", _answer(1), "7", "7"])                   # +1, -1
    result = seeds_table.build(tmp_path, [1, 2])
    arm = result["arms"]["recipe"]
    assert arm["accs"] == [0.75, 0.25] and arm["seeds"] == [1, 2]
    assert [(c["wrong_to_right"], c["right_to_wrong"]) for c in arm["vs_start"]] == [(2, 0), (1, 1)]
    assert result["single"]["start"]["mean"] == 0.25 and result["single"]["start"]["worked"] == 0.25
    assert seeds_table.main([str(tmp_path), "--seeds", "1", "2"]) == 0
    assert "**0.500 (0.250–0.750)**" in capsys.readouterr().out


def test_evaluations_of_different_questions_are_refused(tmp_path):
    seeds_table = _script()
    _eval(tmp_path, "start", ["7"] * 4)
    _eval(tmp_path, "recipe-s1", ["7"] * 4, questions=("q1", "q2", "q3", "other"))
    with pytest.raises(SystemExit, match="did not ask the same questions"):
        seeds_table.build(tmp_path, [1])


def test_the_table_says_on_which_cpu_and_in_which_precision_each_model_was_trained(tmp_path, capsys):
    seeds_table = _script()
    _eval(tmp_path, "demo-coldstart", ["7"] * 4)
    _eval(tmp_path, "demo-s1", [_answer(0), "7", "7", "7"])
    cpu = "AMD EPYC 9R14 96-Core Processor"
    for name in ("demo-coldstart", "demo-s1"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(json.dumps(
            {"bf16": True, "cpu": {"cpu_name": cpu, "capability": "AVX512", "native": True}}))
        (tmp_path / f"eval-{name}" / "metrics.json").write_text(json.dumps({"dtype": "float32", "cpu": cpu}))
    result = seeds_table.build(tmp_path, [1])
    assert result["where"]["demo-s1"] == {"trained": "bf16 autocast", "train_cpu": f"{cpu} (AVX512, native bf16)",
                                          "evaluated": "float32", "eval_cpu": cpu}
    assert seeds_table.main([str(tmp_path), "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert f"Trained in bf16 autocast on {cpu} (AVX512, native bf16): demo-coldstart, demo-s1." in out
    assert f"Evaluated in float32 on {cpu}: demo-coldstart, demo-s1." in out
    assert "| 0.0% (0.0%) |" in out  # cut: pooled (worst seed)
