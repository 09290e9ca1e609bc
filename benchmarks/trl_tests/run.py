"""Run trl's own GRPO and SFT trainer tests on plain trl and with tinyr1's classes swapped in; compare.

trl's tests are not in its wheel: they are read at run time from a git checkout or mirror of trl's repository
(`--trl-repo` or $TRL_REPO) at `--rev` into a temporary folder, never copied into this repository. They run offline
against local stand-ins (standins.py) through a small pytest plugin (trl_tests_plugin.py). Each test file runs
twice: once as written (trl.GRPOTrainer, ...), once with tinyr1's GRPOTrainer/GRPOConfig/SFTTrainer/SFTConfig in
place of the names the test module imports. Not part of `make test`: it needs trl's repository and takes about an
hour per file and variant on a 2-core CPU.

    python benchmarks/trl_tests/run.py --trl-repo ../.mirror/huggingface+trl/repo            # both files, both
    python benchmarks/trl_tests/run.py --files grpo --variants tinyr1 --tinyr1-src ../main/src
    python benchmarks/trl_tests/run.py --report-only                                          # table from outputs

Writes under `--out` (default outputs/trl_tests/): <file>-<variant>.xml (JUnit) and .log, run-<file>-<variant>.json
(what ran: revisions, CPU, seconds), results.json (every test's outcome per variant) and prints the table.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import standins  # noqa: E402
from junit import compare, read_results, table  # noqa: E402

# The newest trl revision stored in the mirror (main, trl 1.10.0.dev0, 2026-07-24): the installed trl 1.16.0 is
# newer than any stored revision, and this one's trainer code is the closest to it (docs/benchmarks.md).
DEFAULT_REV = "f2cd57710ae345ea6428ae95363267fcf38a3dc8"
FILES = {"grpo": "tests/test_grpo_trainer.py", "sft": "tests/test_sft_trainer.py"}
SUPPORT = ["tests/__init__.py", "tests/conftest.py", "tests/testing_utils.py", "tests/testing_constants.py",
           "tests/data"]


def git(repo: str, *args: str) -> str:
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True).stdout.strip()


def extract(repo: str, rev: str, files: list[str], into: Path) -> None:
    """trl's test files at `rev`, written under `into` as trl lays them out."""
    archive = subprocess.run(["git", "-C", repo, "archive", "--format=tar", rev, *SUPPORT, *files], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_one(name: str, variant: str, workdir: Path, manifest_path: Path, args, meta: dict) -> None:
    out = Path(args.out)
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", TRANSFORMERS_OFFLINE="1",
               HF_HOME=json.loads(manifest_path.read_text())["hf_home"], TRL_TESTS_MANIFEST=str(manifest_path),
               TRL_TESTS_SWAP=variant, WANDB_MODE="disabled")
    paths = [str(HERE)] + ([str(Path(args.tinyr1_src).resolve())] if variant == "tinyr1" else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    xml = out / f"{name}-{variant}.xml"
    workers = str(args.workers if args.workers > 1 else 0)  # one worker: no xdist process at all
    command = ["nice", "-n", "10", sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "trl_tests_plugin",
               "-q", "-rfEs", f"--junitxml={xml}", f"--timeout={args.timeout}", "-n", workers,
               FILES[name], *(["-k", args.k] if args.k else [])]
    record = dict(meta, file=FILES[name], variant=variant, command=" ".join(command[3:]), workers=args.workers,
                  k=args.k)
    if variant == "tinyr1":
        src = Path(args.tinyr1_src).resolve()
        record["tinyr1_src"] = str(src)
        try:
            record["tinyr1_commit"] = git(str(src), "rev-parse", "HEAD")
            record["tinyr1_dirty"] = bool(git(str(src), "status", "--porcelain", "--untracked-files=no"))
        except subprocess.CalledProcessError:
            record["tinyr1_commit"] = None
    print(f"== {name} on {variant}: {record['command']}", flush=True)
    start = time.time()
    with (out / f"{name}-{variant}.log").open("w", encoding="utf-8") as log:
        rc = subprocess.run(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    record.update(pytest_exit=rc, seconds=round(time.time() - start), finished=time.strftime("%Y-%m-%d %H:%M"))
    (out / f"run-{name}-{variant}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    print(f"   {record['seconds']} s, pytest exit {rc}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trl-repo", default=os.environ.get("TRL_REPO"),
                        help="git directory of trl's repository (a clone or a bare mirror); default $TRL_REPO")
    parser.add_argument("--rev", default=DEFAULT_REV, help="trl revision whose tests run (default: %(default)s)")
    parser.add_argument("--files", nargs="+", choices=sorted(FILES), default=sorted(FILES))
    parser.add_argument("--variants", nargs="+", choices=["trl", "tinyr1"], default=["trl", "tinyr1"])
    parser.add_argument("--tinyr1-src", default=str(REPO / "src"), help="the src/ folder tinyr1 is imported from")
    parser.add_argument("--out", default=str(REPO / "outputs" / "trl_tests"), help="folder for the raw results")
    parser.add_argument("--workers", type=int, default=1, help="pytest-xdist workers (2 at most on an idle 2-core)")
    parser.add_argument("--full-vocab", action="store_true",
                        help="stand-ins with the real vocabulary sizes and special-token ids (slower; standins.py)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds one test may take")
    parser.add_argument("-k", default=None, help="pytest -k expression, to run a subset")
    parser.add_argument("--report-only", action="store_true", help="print the table from the results in --out")
    args = parser.parse_args()
    args.out = str(Path(args.out).resolve())  # pytest runs in the temporary folder
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if not args.report_only:
        if not args.trl_repo:
            parser.error("give --trl-repo (or set TRL_REPO): trl's tests are read from its git repository")
        try:  # the zen rows as trl writes them, from its generator at the same revision
            zen = git(args.trl_repo, "show", f"{args.rev}:scripts/generate_zen_dataset.py")
        except subprocess.CalledProcessError:
            zen = None
        manifest = standins.build(out / "standins", zen, args.full_vocab)
        import trl

        meta = {"trl_repo": args.trl_repo, "trl_rev": git(args.trl_repo, "rev-parse", args.rev),
                "trl_installed": trl.__version__, "cpu": cpu_name(), "python": platform.python_version(),
                "standins": manifest["models"] + list(manifest["datasets"]),
                "zen_configs_from_trl_generator": manifest["zen_configs_from_trl_generator"],
                "full_vocab": manifest["full_vocab"]}
        with tempfile.TemporaryDirectory(prefix="trl-tests-") as tmp:
            workdir = Path(tmp)
            extract(args.trl_repo, args.rev, [FILES[name] for name in args.files], workdir)
            for name in args.files:
                for variant in args.variants:
                    run_one(name, variant, workdir, out / "standins" / "manifest.json", args, meta)

    results = {name: {variant: read_results(out / f"{name}-{variant}.xml") for variant in ("trl", "tinyr1")}
               for name in FILES}
    (out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(table(results))
    print(compare(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
