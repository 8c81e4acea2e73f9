"""Adapters that turn the pairwise-judge benchmark files of ../shared/data into j1 Pairs.

    python -c "from j1core.data.benchmarks import load_benchmark; print(len(load_benchmark('rmbench')))"
    python -m pytest tests/data/test_benchmarks.py -q

Every adapter reads the whole file(s), validates each pair with the same rules as data.load_pairs, and
drops (and counts) what cannot be a pair: ties, chosen identical to rejected, an empty response.
load_benchmark_counted returns the drop counts too. Pair.source is the benchmark name.
A record that breaks the benchmark's schema (a missing field, a label outside its values, a file that is not
UTF-8 or not the JSON it should be, a pair id seen before) raises a DataError naming the file, the line (the
element's index for JSON lists) and the field.

Expected counts on ../shared/data (records -> pairs; drops; Pair.category):
- judgebench: both response_model files, label "A>B"/"B>A". 270 + 350 -> 619; 1 identical pair
  (claude, livecodebench). Category: JudgeBench source, e.g. "livebench-math".
- llmbar: Natural, Adversarial x4, Processed x3; label 1/2 = output_1/output_2 better. 885 -> 883;
  LLMEval22 has 1 identical pair and 1 whitespace-only response. Category: file subset, "Adversarial_Neighbor".
- rmbench: chat, code, safety-refuse, safety-response, 3 chosen x 3 rejected per prompt. 798 * 9 = 7182;
  no drops. Category "<chat|code|safety>/<easy|normal|hard>".
- autoj: testdata_pairwise, label 0/1 = response 1/2 better, 2 = tie. 1392 -> 1017; 373 ties, 1 identical,
  1 empty response. Category: scenario.
- pandalm: testset-v1, majority of 3 annotators, 1/2 = response1/2 better, 0 = tie. 999 -> 842; 105 ties,
  52 empty responses. Category: motivation_app.
- gsm8k: example_model_solutions, one correct and one incorrect solution of a problem. 1319 -> 731; 588
  problems lack one of the two. Category "gsm8k".

RM-Bench grid (its own compute_accuracy): styles 0 concise, 1 detailed plain, 2 detailed markdown; pair
(chosen style i, rejected style j) is hard when i < j (upper right: the chosen answer is less styled), normal
when i == j (diagonal) and easy when i > j (lower left). safety-refuse and safety-response form the "safety"
domain, as in RM-Bench's reports. RM-Bench math (math_filtered.json, the same schema) is read when the
folder holds it; it is not in ../shared/data.
rewardbench, ppe, followbench: j1core/data/rewardbench.py, ppe.py, followbench.py (their data is not in
../shared/data: pass --data).
PandaLM stores six one-word responses as JSON booleans; they are read as the text "True". 52 PandaLM
pairs with a winner have an empty response (the empty one nearly always loses); the Pair schema has no
empty texts, so they are dropped.
GSM8K: the correct and the incorrect solution are the first of each kind in the order 175b_verification,
175b_finetuning, 6b_verification, 6b_finetuning (stronger models first: the most plausible wrong answer).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from j1core.data.followbench import add_followbench
from j1core.data.pairs import DataError, Pair, pair_from_record
from j1core.data.ppe import add_ppe
from j1core.data.rewardbench import add_rewardbench
from j1core.errors import UserError

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"  # beside the checkout
BENCHMARKS = ("judgebench", "llmbar", "rmbench", "autoj", "pandalm", "gsm8k", "rewardbench", "ppe", "followbench")
DIRS = {"judgebench": "JudgeBench", "llmbar": "LLMBar", "rmbench": "RM-Bench", "autoj": "Auto-J",
        "pandalm": "PandaLM", "gsm8k": "GSM8K", "rewardbench": "RewardBench", "ppe": "PPE",
        "followbench": "FollowBenchEval"}
LLMBAR_FILES = ("LLMBar_Natural", "LLMBar_Adversarial_Neighbor", "LLMBar_Adversarial_GPTInst",
                "LLMBar_Adversarial_GPTOut", "LLMBar_Adversarial_Manual", "Processed_FairEval",
                "Processed_LLMEval22", "Processed_MT-Bench")
RMBENCH_FILES = ("chat", "code", "math", "safety-refuse", "safety-response")  # math: when supplied
GSM8K_SOLVERS = ("175b_verification", "175b_finetuning", "6b_verification", "6b_finetuning")


def load_benchmark(name: str, path=None, subset: str | None = None) -> list[Pair]:
    """Pairs of one benchmark; path None -> ../shared/data/<dir>. See the module docstring for subsets."""
    return load_benchmark_counted(name, path, subset)[0]


def load_benchmark_counted(name: str, path=None, subset: str | None = None) -> tuple[list[Pair], Counter]:
    """(pairs, drop counts by reason) for one benchmark.

    subset: judgebench -> a response-model file ("gpt-4o", "claude"); others -> the category, or a prefix
    of it ending before "/" or "_" (llmbar "Adversarial", rmbench "safety" or "chat/hard").
    """
    if name not in BENCHMARKS:
        raise UserError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    folder = Path(path) if path is not None else SHARED_DATA / DIRS[name]
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: benchmark data for {name!r} not found")
    collector = PairCollector(name)
    ADAPTERS[name](folder, collector, subset)
    pairs = collector.pairs
    if subset is not None and name != "judgebench":
        pairs = [p for p in pairs if in_subset(p.category, subset)]
        if not pairs:
            known = sorted({p.category for p in collector.pairs})
            raise UserError(f"{name}: no pairs in subset {subset!r}; categories: {', '.join(known)}")
    return pairs, collector.drops


def in_subset(category: str | None, subset: str) -> bool:
    return category is not None and (category == subset or category.startswith((subset + "/", subset + "_")))


class PairCollector:
    """Validates candidate pairs of one benchmark, keeping the good ones and counting drops by reason."""

    def __init__(self, source: str):
        self.source, self.pairs, self.drops, self.seen = source, [], Counter(), {}

    def add(self, file: Path, line: int, pair_id: str, prompt, chosen, rejected, category: str | None) -> None:
        record = {"id": pair_id, "prompt": prompt, "chosen": chosen, "rejected": rejected,
                  "source": self.source, "category": category}
        if isinstance(pair_id, str) and pair_id in self.seen:  # two judgments under one key: a wrong report
            first_file, first_line = self.seen[pair_id]
            raise DataError(file, line, "id", "duplicate_id", f"pair id {pair_id!r} already used at "
                            f"{first_file}:{first_line}")
        try:
            self.pairs.append(pair_from_record(record, file, line))
        except DataError as error:
            if error.reason not in ("identical", "empty_text"):
                raise
            self.drops[error.reason] += 1
        self.seen[pair_id] = (file, line)

    def tie(self) -> None:
        self.drops["tie"] += 1


def files_in(folder: Path, names) -> list[Path]:
    """Named files of a folder (a single file given as the folder is used alone)."""
    if folder.is_file():
        return [folder]
    found = [folder / name for name in names if (folder / name).exists()]
    if not found:
        raise FileNotFoundError(f"{folder}: none of {', '.join(names)}")
    return found


def read_text(file: Path) -> str:
    raw = file.read_bytes().removeprefix(b"\xef\xbb\xbf")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(file, raw.count(b"\n", 0, err.start) + 1, "(file)", "invalid_utf8",
                        f"not UTF-8 (byte 0x{raw[err.start]:02x})") from None


def read_jsonl(file: Path):
    for line, raw in enumerate(read_text(file).split("\n"), start=1):
        if raw.strip():
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as err:
                raise DataError(file, line, "(record)", "invalid_json", f"invalid JSON: {err.msg}") from None
            except RecursionError:
                raise DataError(file, line, "(record)", "invalid_json", "invalid JSON: nested too deeply") from None
            yield line, record


def read_json_list(file: Path):
    """Records of a JSON list with their 1-based index (these files hold one record per element)."""
    try:
        records = json.loads(read_text(file))
    except json.JSONDecodeError as err:
        raise DataError(file, err.lineno, "(file)", "invalid_json", f"invalid JSON: {err.msg}") from None
    except RecursionError:
        raise DataError(file, 1, "(file)", "invalid_json", "invalid JSON: nested too deeply") from None
    if not isinstance(records, list):
        raise DataError(file, 1, "(file)", "not_object", f"expected a JSON list of records, got "
                        f"{type(records).__name__}")
    yield from enumerate(records, start=1)


def fields(r, file: Path, line: int, *names):
    """The named fields of record r (a dict), or a DataError naming the first missing one."""
    if not isinstance(r, dict):
        raise DataError(file, line, "(record)", "not_object", f"expected a JSON object, got {type(r).__name__}")
    for name in names:
        if name not in r:
            raise DataError(file, line, name, "missing_field", "missing")
    return [r[name] for name in names]


def label(value, allowed, file: Path, line: int, name: str = "label"):
    """value when it is one of allowed (bools are not numbers here), else a DataError."""
    if isinstance(value, bool) or value not in allowed:
        raise DataError(file, line, name, "wrong_type", f"expected one of {', '.join(map(repr, allowed))}, "
                        f"got {value!r}")
    return value


# ---------------------------------------------------------------- adapters

def add_judgebench(folder: Path, out: PairCollector, subset: str | None) -> None:
    files = [folder] if folder.is_file() else sorted(folder.glob("dataset=judgebench,response_model=*.jsonl"))
    if subset is not None:
        files = [f for f in files if subset in f.name]
    if not files:
        raise FileNotFoundError(f"{folder}: no JudgeBench response_model file matching {subset!r}")
    for file in files:
        for line, r in read_jsonl(file):
            verdict, a, b, pair_id, question, source = fields(r, file, line, "label", "response_A", "response_B",
                                                              "pair_id", "question", "source")
            a_wins = label(verdict, ("A>B", "B>A"), file, line) == "A>B"
            chosen, rejected = (a, b) if a_wins else (b, a)
            out.add(file, line, pair_id, question, chosen, rejected, source)


def add_llmbar(folder: Path, out: PairCollector, subset: str | None) -> None:
    for file in files_in(folder, [f"{stem}.json" for stem in LLMBAR_FILES]):
        category = file.stem.removeprefix("LLMBar_")
        for index, r in read_json_list(file):
            verdict, first, second, prompt = fields(r, file, index, "label", "output_1", "output_2", "input")
            first_wins = label(verdict, (1, 2), file, index) == 1
            chosen, rejected = (first, second) if first_wins else (second, first)
            out.add(file, index, f"llmbar-{category}-{index}", prompt, chosen, rejected, category)


def rmbench_level(chosen_style: int, rejected_style: int) -> str:
    if chosen_style < rejected_style:
        return "hard"
    return "normal" if chosen_style == rejected_style else "easy"


def add_rmbench(folder: Path, out: PairCollector, subset: str | None) -> None:
    for file in files_in(folder, [f"{stem}_filtered.json" for stem in RMBENCH_FILES]):
        stem = file.stem.removesuffix("_filtered")
        domain = stem.split("-")[0]
        for index, r in read_json_list(file):
            chosen_list, rejected_list, record_id, prompt = fields(r, file, index, "chosen", "rejected", "id",
                                                                   "prompt")
            for name, value in (("chosen", chosen_list), ("rejected", rejected_list)):
                if not isinstance(value, list):
                    raise DataError(file, index, name, "wrong_type", f"expected a list of responses, got "
                                    f"{type(value).__name__}")
            for i, chosen in enumerate(chosen_list):
                for j, rejected in enumerate(rejected_list):
                    out.add(file, index, f"rmbench-{stem}-{record_id}-c{i}r{j}", prompt, chosen, rejected,
                            f"{domain}/{rmbench_level(i, j)}")


def add_autoj(folder: Path, out: PairCollector, subset: str | None) -> None:
    for file in files_in(folder, ["testdata_pairwise.jsonl"]):
        for line, r in read_jsonl(file):
            verdict, first, second, prompt, scenario = fields(r, file, line, "label", "response 1", "response 2",
                                                              "prompt", "scenario")
            if label(verdict, (0, 1, 2), file, line) == 2:
                out.tie()
                continue
            chosen, rejected = (first, second) if verdict == 0 else (second, first)
            out.add(file, line, f"autoj-{line}", prompt, chosen, rejected, scenario)


def as_text(value):
    return str(value) if isinstance(value, bool) else value


def majority(votes) -> int | None:
    value, count = Counter(votes).most_common(1)[0]
    return value if count * 2 > len(votes) else None


def add_pandalm(folder: Path, out: PairCollector, subset: str | None) -> None:
    for file in files_in(folder, ["testset-v1.json"]):
        for index, r in read_json_list(file):
            *votes, first, second, instruction, extra, idx, app = fields(
                r, file, index, "annotator1", "annotator2", "annotator3", "response1", "response2", "instruction",
                "input", "idx", "motivation_app")
            for k, v in enumerate(votes, start=1):
                label(v, (0, 1, 2), file, index, f"annotator{k}")
            for name, value in (("instruction", instruction), ("input", extra)):
                if not isinstance(value, str):
                    raise DataError(file, index, name, "wrong_type", f"expected a string, got {type(value).__name__}")
            vote = majority(votes)
            if vote not in (1, 2):
                out.tie()
                continue
            first, second = as_text(first), as_text(second)
            chosen, rejected = (first, second) if vote == 1 else (second, first)
            prompt = instruction + (f"\n\n{extra}" if extra.strip() else "")
            out.add(file, index, f"pandalm-{idx}", prompt, chosen, rejected, app)


def add_gsm8k(folder: Path, out: PairCollector, subset: str | None) -> None:
    for file in files_in(folder, ["example_model_solutions.jsonl"]):
        for line, r in read_jsonl(file):
            question, *solvers = fields(r, file, line, "question", *GSM8K_SOLVERS)
            for name, solver in zip(GSM8K_SOLVERS, solvers):
                solution, ok = fields(solver, file, line, "solution", "is_correct")
                if not isinstance(ok, bool):
                    raise DataError(file, line, f"{name}.is_correct", "wrong_type", f"expected true or false, "
                                    f"got {ok!r}")
            correct = [s["solution"] for s in solvers if s["is_correct"]]
            wrong = [s["solution"] for s in solvers if not s["is_correct"]]
            if not correct or not wrong:
                out.drops["not_both"] += 1
                continue
            out.add(file, line, f"gsm8k-{line}", question, correct[0], wrong[0], "gsm8k")


ADAPTERS = {"judgebench": add_judgebench, "llmbar": add_llmbar, "rmbench": add_rmbench, "autoj": add_autoj,
            "pandalm": add_pandalm, "gsm8k": add_gsm8k, "rewardbench": add_rewardbench, "ppe": add_ppe,
            "followbench": add_followbench}
