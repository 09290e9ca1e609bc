"""Recipe parsing: YAML defaults, flag overrides, unknown keys named with a suggestion, round trip of the dump."""

from dataclasses import dataclass

import pytest
from trl import GRPOConfig, ModelConfig

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.recipe import dump_recipe, parse_recipe, recipe_values

CPU = {"use_cpu": True, "bf16": False}


@dataclass
class Script:
    dataset_name: str = "openai/gsm8k"


TYPES = [Script, GRPOConfig, ModelConfig]


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("dataset_name: local\nlearning_rate: 1.0e-5\nnum_generations: 4\n"
                    f"per_device_train_batch_size: 4\noutput_dir: {tmp_path / 'out'}\n")
    return path


def test_yaml_sets_defaults_and_flags_override(recipe):
    script, training, _ = parse_recipe(TYPES, ["--config", str(recipe), "--learning_rate", "3e-6"], "t", defaults=CPU)
    assert script.dataset_name == "local" and training.learning_rate == 3e-6 and training.num_generations == 4
    assert training.use_cpu and not training.bf16


def test_dump_round_trips(recipe, tmp_path):
    argv = ["--config", str(recipe), "--max_steps", "7"]
    dump_recipe(tmp_path / "config.yaml", recipe_values(TYPES, argv, defaults=CPU))
    _, training, _ = parse_recipe(TYPES, ["--config", str(tmp_path / "config.yaml")], "t")
    assert training.max_steps == 7 and training.learning_rate == 1e-5 and training.use_cpu


@pytest.mark.parametrize(
    "yaml_text,argv,message",
    [
        ("learnig_rate: 1\n", [], "r.yaml: unknown key 'learnig_rate'; did you mean 'learning_rate'?"),
        ("", ["--num_generation", "4"], "--num_generation: unknown flag; did you mean --num_generations?"),
        ("", ["--bogus=3"], "--bogus: unknown flag; see --help"),
        ("a: [1\n", [], "not valid YAML"),
        ("- 1\n", [], "must be a YAML mapping"),
    ],
)
def test_mistakes_are_one_line(tmp_path, yaml_text, argv, message):
    path = tmp_path / "r.yaml"
    path.write_text(yaml_text)
    with pytest.raises(TinyR1Error) as err:
        parse_recipe(TYPES, ["--config", str(path), *argv], "t", defaults=CPU)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(TinyR1Error, match="no such file"):
        parse_recipe(TYPES, ["--config", str(tmp_path / "none.yaml")], "t", defaults=CPU)


@pytest.mark.parametrize("command", ["train", "sft"])
def test_a_runs_dumped_config_parses_again(tmp_path, command):
    # config.yaml holds every field, nulls included; it must load again as --config (resume depends on it).
    from tinyr1.commands import sft, train

    module = train if command == "train" else sft
    *_, values = module.parse_args(["--model_name_or_path", "org/model", "--max_steps", "3"])
    dump_recipe(tmp_path / "config.yaml", values)
    *_, again = module.parse_args(["--config", str(tmp_path / "config.yaml")])
    assert again == values


def test_a_null_number_in_a_recipe_is_named(tmp_path):
    (tmp_path / "r.yaml").write_text("learning_rate:\n")
    with pytest.raises(TinyR1Error, match=r"r.yaml: learning_rate: empty \(null\)"):
        parse_recipe(TYPES, ["--config", str(tmp_path / "r.yaml")], "t", defaults=CPU)


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("learning_rate: 1.0e-5\nnum_generations: 4\nlearning_rate: 3.0e-6\n")
    with pytest.raises(TinyR1Error, match=r"dup.yaml line 3: not valid YAML \(duplicate key 'learning_rate' "
                                          r"\(first on line 1\); keep one\)"):
        parse_recipe(TYPES, ["--config", str(path)], "t", defaults=CPU)
    merged = tmp_path / "merge.yaml"  # YAML's own override of merged keys stays allowed
    merged.write_text("base: &b {a: 1, b: 2}\nother:\n  <<: *b\n  a: 3\n")
    from tinyr1.infra.recipe_file import read_recipe_file

    assert read_recipe_file(str(merged))["other"] == {"a": 3, "b": 2}


def test_deep_nesting_is_one_line(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("learning_rate: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(TinyR1Error, match="deep.yaml: nested too deeply to read"):
        parse_recipe(TYPES, ["--config", str(path)], "t", defaults=CPU)


@pytest.mark.parametrize("text,message", [
    ("max_steps: 1.0e+26\n", "max_steps 100000000000000004764729344: must be at most 1,000,000,000"),
    ("learning_rate: 1.0e+12\n", "learning_rate 1000000000000.0: must be at most 1,000,000,000"),
    ("seed: 100000000000000000000000\n", "seed 100000000000000000000000: too large"),
])
def test_every_number_is_bounded(tmp_path, text, message):
    path = tmp_path / "big.yaml"
    path.write_text(text)
    with pytest.raises(TinyR1Error, match=message):
        parse_recipe(TYPES, ["--config", str(path)], "t", defaults=CPU)
