"""The data loader (tinyr1.tasks.data) on real GSM8K, reasoning-gym, dataset options and bad input."""

import json

import pytest

from tinyr1.infra.errors import TinyR1Error
from tinyr1.tasks.data import load_examples, load_prompt_rows

from ..conftest import read_jsonl


def test_test_split_and_limit(gsm8k_dir):
    examples, skipped = load_examples(str(gsm8k_dir), "test")
    assert len(examples) == 1319 and skipped == 0
    rows = load_prompt_rows(str(gsm8k_dir / "test.jsonl"), "test", limit=5, system_prompt="Be brief.")
    assert len(rows) == 5 and rows[0]["prompt"][0] == {"role": "system", "content": "Be brief."}


def test_reasoning_gym_is_offline_seeded_and_splits_differ():
    a, _ = load_examples("reasoning-gym:gsm_symbolic", "train", limit=4, seed=3)
    b, _ = load_examples("reasoning-gym:gsm_symbolic", "train", limit=4, seed=3)
    test, _ = load_examples("reasoning-gym:gsm_symbolic", "test", limit=4, seed=3)
    assert a == b and len(a) == 4
    assert {x["question"] for x in a}.isdisjoint({x["question"] for x in test})
    assert all(x["answer"].lstrip("-").isdigit() and x["solution"] for x in a)


def test_missing_sources_and_unknown_generators(tmp_path):
    with pytest.raises(TinyR1Error, match="no such file or folder"):
        load_examples(str(tmp_path / "missing"))
    with pytest.raises(TinyR1Error, match=r"no test.jsonl, test.json or test.parquet"):
        load_examples(str(tmp_path), "test")
    with pytest.raises(TinyR1Error, match="reasoning-gym:no_such_task: cannot generate"):
        load_examples("reasoning-gym:no_such_task", limit=2)


def test_modelscope_without_the_package_says_how_to_install():
    pytest.importorskip("torch")  # keep the import cost honest; modelscope is not a dependency
    try:
        import modelscope  # noqa: F401
    except ImportError:
        with pytest.raises(TinyR1Error, match="pip install modelscope"):
            load_examples("modelscope/gsm8k")
    else:
        pytest.skip("modelscope is installed here")


def test_dataset_options_reach_the_generator_and_splits_stay_apart(cli, tmp_path):
    options = ["min_terms=3", "max_terms=3", "max_digits=2"]
    train, _ = load_examples("reasoning-gym:chain_sum", "train", 40, options=options)
    test, _ = load_examples("reasoning-gym:chain_sum", "test", 40, options={"min_terms": 3, "max_terms": 3,
                                                                           "max_digits": 2})
    for ex in train + test:
        expression = ex["question"].split(":")[-1].rstrip(" =")
        assert len(expression.split()) == 5 and all(len(t) <= 2 for t in expression.split()[::2])
        # the worked solution of a sum: one step a line, ending at the gold
        assert ex["solution"].count("\n") == 1 and ex["solution"].endswith(f"= {ex['answer']}")
    assert {e["question"] for e in train}.isdisjoint({e["question"] for e in test})
    assert any(int(e["answer"]) < 0 for e in train)  # chain_sum answers can be negative
    out = tmp_path / "x.jsonl"
    result = cli("prepare", "--dataset_name", "reasoning-gym:chain_sum", "--dataset_options", *options,
                 "--limit", "5", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(out)) == 5


@pytest.mark.parametrize(
    "options,message",
    [
        (["min_term=3"], "chain_sum has no option 'min_term'; its options are min_terms, max_terms"),
        (["min_terms=0"], "min_terms=0: rejected by chain_sum (min_terms must be positive)"),
        (["min_terms=abc"], "chain_sum's min_terms must be an integer"),
        (["min_terms"], "'min_terms': expected key=value"),
    ],
)
def test_bad_dataset_options_are_one_line(cli, tmp_path, options, message):
    result = cli("prepare", "--dataset_name", "reasoning-gym:chain_sum", "--dataset_options", *options,
                 "--limit", "5", "--output", str(tmp_path / "x.jsonl"))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_dataset_options_need_a_generator(gsm8k_dir):
    with pytest.raises(TinyR1Error, match="options apply to reasoning-gym:<name> sources only"):
        load_examples(str(gsm8k_dir), "test", 3, options=["min_terms=2"])


def test_dataset_options_from_a_yaml_mapping_and_flags(tmp_path):
    from tinyr1.commands import train

    recipe = tmp_path / "r.yaml"
    recipe.write_text("dataset_name: reasoning-gym:chain_sum\ndataset_options:\n  min_terms: 2\n  max_terms: 3\n")
    script, _, _, values = train.parse_args(["--config", str(recipe), "--output_dir", str(tmp_path / "o")])
    assert script.dataset_options == {"min_terms": 2, "max_terms": 3}
    assert values["dataset_options"] == {"min_terms": 2, "max_terms": 3}  # config.yaml reproduces it
    script, _, _, _ = train.parse_args(["--config", str(recipe), "--dataset_options", "max_digits=1",
                                        "--output_dir", str(tmp_path / "o")])
    assert script.dataset_options == ["max_digits=1"]


def test_a_boxed_gold_is_unwrapped_so_a_right_answer_scores(tmp_path):
    from tinyr1.tasks.rewards import correctness_reward_func

    data = tmp_path / "boxed.jsonl"
    data.write_text(json.dumps({"question": "6 + 6?", "answer": "6 + 6 = 12\n#### \\boxed{12}"}) + "\n"
                    + json.dumps({"question": "2 * 800?", "answer": "#### $\\boxed{1,600}$"}) + "\n")
    rows = load_prompt_rows(str(data))
    assert [r["answer"] for r in rows] == ["12", "1600"]
    right = [[{"role": "assistant", "content": "<reasoning>\n6 + 6 = 12\n</reasoning>\n<answer>\n12\n</answer>"}]]
    assert correctness_reward_func(right, [rows[0]["answer"]])[0] > 0


def test_bad_rows_are_named_by_their_line_or_their_row_from_one(tmp_path):
    lines = tmp_path / "d.jsonl"
    lines.write_text(json.dumps({"question": "q", "answer": "#### 1"}) + "\n\n" + json.dumps({"question": "q"}) + "\n")
    with pytest.raises(TinyR1Error, match="d.jsonl line 3: missing field answer"):
        load_examples(str(lines))
    array = tmp_path / "train.json"
    array.write_text(json.dumps([{"question": "q", "answer": "#### 1"}, {"question": "q"}]))
    with pytest.raises(TinyR1Error, match="train.json row 2: missing field answer"):
        load_examples(str(tmp_path))  # a folder: the message names the file it read


def test_rows_as_a_python_user_writes_them():
    """A plain gold answer, GSM8K's ``#### 5``, prepared rows with a numeric gold, a pandas DataFrame: one rule."""
    import pandas

    from tinyr1.tasks.rows import prompt_rows_from

    plain = [{"question": "What is 2 + 3?", "answer": "5"}, {"question": "What is 4 + 4?", "answer": 8}]
    gsm8k = [{"question": "What is 2 + 3?", "answer": "2 + 3 = 5\n#### 5"}]
    prepared = [{"prompt": [{"role": "user", "content": "What is 2 + 3?"}], "answer": 5}]
    assert [r["answer"] for r in prompt_rows_from(plain, "rows")] == ["5", "8"]
    assert prompt_rows_from(gsm8k, "rows")[0]["answer"] == "5"
    assert prompt_rows_from(prepared, "rows")[0]["answer"] == "5"
    assert prompt_rows_from(pandas.DataFrame(plain), "rows") == prompt_rows_from(plain, "rows")
    with pytest.raises(TinyR1Error, match=r"rows\[0\]: answer must be text or a number \(the gold answer\)"):
        prompt_rows_from([{"question": "q", "answer": ["5"]}], "rows")
