"""PPE (lmarena's Preference Proxy Evaluations): the human-preference set and the five correctness sets.

    python generate.py judge --model DIR --benchmark ppe --data PPE/ --subset correctness --out runs/ppe
    python -m pytest tests/data/test_ppe.py -q

Schemas followed: the Hugging Face dataset cards of lmarena-ai/PPE-Human-Preference-V1 (README e75cdc5,
split "test", 16,038 records) and lmarena-ai/PPE-{MMLU-Pro,MATH,GPQA,IFEval,MBPP-Plus}-Best-of-K (cards of
late 2024, split "train", 512 records each), read from JSONL, a JSON array, Parquet (the hub's
data/*.parquet) or a saved HF dataset (j1core/data/formats.py). --data is one file, or a folder: every such
file under it. Which set a record belongs to is read from the record itself:

- Human preference (has `winner`): question_id, prompt, response_1 (by model_a), response_2 (by model_b),
  winner "model_a" | "model_b" | "tie" | "tie (bothbad)", plus metadata (language, conv_metadata,
  category_tag, hard_prompt, ...) that is not used. model_a's win makes response_1 the chosen one; ties
  are dropped and counted ("tie"), as PPE's human-preference accuracy leaves them out. Pair.id
  "ppe-human-<question_id>", Pair.category "human_preference".
- Correctness (has `scores`): question_id, prompt, response_1 ... response_K (K = 32 sampled responses of
  one model, model_name), scores (one bool per response: is it correct), conflict_pairs (every pair of
  response indices, 0-based, with different scores) and sampled_conflict_pairs (a sample of those, up to 5
  per prompt), plus set-specific columns (MMLU-Pro: options, answer, category; GPQA: Question, choices,
  correct_choice, ...). As PPE pairs them (and J1 evaluates them), each [i, j] of sampled_conflict_pairs is
  one pair of the same prompt: the correct response (response_{i+1} when scores[i] is true; the higher
  score) is chosen, the incorrect one rejected. A listed pair whose two scores are equal is dropped and
  counted ("not_conflict"). A record without sampled_conflict_pairs uses conflict_pairs, and one with
  neither every pair (i < j) whose scores differ, which is what conflict_pairs holds.
  Pair.id "ppe-<set>-<question_id>-r<row>-<i>v<j>" (a question can recur in a set, one row per model),
  Pair.category "correctness/<set>", the set being mmlu_pro, math, gpqa, ifeval or mbpp_plus as named by
  the file's path below --data (a folder or file name holding "mmlu", "gpqa", "ifeval", "mbpp" or "math",
  nearest first; a single file also looks at its folder and the one above), otherwise the file's stem.

--subset human_preference, --subset correctness or --subset correctness/math choose a part. A record that
breaks its schema is a DataError naming file:line (row):field.
"""
from __future__ import annotations

from pathlib import Path

from j1core.data.formats import data_files, iter_records
from j1core.data.pairs import DataError, _kind

# Path words that name a correctness set, in the order they are tried (MATH last: "math" is the least
# specific and no other set's name holds it).
SET_NAMES = (("mmlu", "mmlu_pro"), ("gpqa", "gpqa"), ("ifeval", "ifeval"), ("mbpp", "mbpp_plus"), ("math", "math"))
WINNERS = {"model_a": 1, "model_b": 2}
TIES = ("tie", "tie (bothbad)")


def add_ppe(folder: Path, out, subset: str | None) -> None:
    """Pairs of every PPE file under `folder` into `out` (a benchmarks.PairCollector)."""
    for file in data_files(folder):
        for line, r in iter_records(file):
            if isinstance(r, DataError):
                raise r
            if not isinstance(r, dict):
                raise DataError(file, line, "(record)", "not_object", f"expected a JSON object, got {_kind(r)}")
            if "winner" in r:
                add_human(r, file, line, out)
            elif "scores" in r:
                add_correctness(r, file, line, out, correctness_set(file, Path(folder)))
            else:
                raise DataError(file, line, "winner", "missing_field", "a PPE record has 'winner' (human "
                                "preference) or 'scores' and 'sampled_conflict_pairs' (correctness)")


def correctness_set(file: Path, root: Path) -> str:
    """The correctness set a file belongs to, from the words of its path, nearest part first: its name and
    the folders up to --data (a single file: its folder and the one above, as in PPE-MATH-Best-of-K/data/)."""
    parts, folder = [file.stem], file.parent
    stop = root if root.is_dir() and root != file else folder.parent
    while folder != folder.parent:
        parts.append(folder.name)
        if folder == stop:
            break
        folder = folder.parent
    for part in parts:
        lowered = part.lower()
        for word, name in SET_NAMES:
            if word in lowered:
                return name
    return file.stem


def text_field(r: dict, field: str, file, line: int) -> str:
    if field not in r:
        raise DataError(file, line, field, "missing_field", "missing")
    if not isinstance(r[field], str):
        raise DataError(file, line, field, "wrong_type", f"expected a string, got {_kind(r[field])}")
    return r[field]


def add_human(r: dict, file, line: int, out) -> None:
    winner = r["winner"]
    if winner in TIES:
        out.tie()
        return
    if winner not in WINNERS:
        raise DataError(file, line, "winner", "wrong_type",
                        f"expected 'model_a', 'model_b', 'tie' or 'tie (bothbad)', got {winner!r}")
    prompt, first, second = (text_field(r, f, file, line) for f in ("prompt", "response_1", "response_2"))
    chosen, rejected = (first, second) if WINNERS[winner] == 1 else (second, first)
    out.add(file, line, f"ppe-human-{question_id(r, file, line)}", prompt, chosen, rejected, "human_preference")


def question_id(r: dict, file, line: int) -> str:
    if "question_id" not in r:
        raise DataError(file, line, "question_id", "missing_field", "missing")
    value = r["question_id"]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(file, line, "question_id", "wrong_type", f"expected a string, got {_kind(value)}")
    return str(value)


def add_correctness(r: dict, file, line: int, out, set_name: str) -> None:
    qid = question_id(r, file, line)
    prompt = text_field(r, "prompt", file, line)
    scores = r["scores"]
    if not isinstance(scores, list) or not all(isinstance(s, (bool, int, float)) for s in scores):
        raise DataError(file, line, "scores", "wrong_type", f"expected a list of booleans, got {_kind(scores)}")
    field = next((f for f in ("sampled_conflict_pairs", "conflict_pairs") if r.get(f) is not None), None)
    if field is None:  # no list given: every pair of responses whose scores differ, as conflict_pairs holds
        listed = [[i, j] for i in range(len(scores)) for j in range(i + 1, len(scores)) if scores[i] != scores[j]]
    else:
        listed = r[field]
        if not isinstance(listed, list):
            raise DataError(file, line, field, "wrong_type", f"expected a list of [i, j] index pairs, got "
                            f"{_kind(listed)}")
    for pair in listed:
        if (not isinstance(pair, list) or len(pair) != 2 or
                not all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k < len(scores) for k in pair)):
            raise DataError(file, line, field, "wrong_type",
                            f"{pair!r} is not a pair of response indices in [0, {len(scores)})")
        i, j = pair
        if scores[i] == scores[j]:
            out.drops["not_conflict"] += 1
            continue
        good, bad = (i, j) if scores[i] > scores[j] else (j, i)
        chosen = text_field(r, f"response_{good + 1}", file, line)
        rejected = text_field(r, f"response_{bad + 1}", file, line)
        out.add(file, line, f"ppe-{set_name}-{qid}-r{line}-{i}v{j}", prompt, chosen, rejected,
                f"correctness/{set_name}")


def ppe_scores(category_accuracy: dict[str, float]) -> dict:
    """The two PPE headline numbers from per-category accuracies: human_preference, and correctness as the
    mean of the correctness sets' accuracies (each set weighs the same, whatever its number of pairs)."""
    sets = {name.split("/", 1)[1]: acc for name, acc in category_accuracy.items()
            if name.startswith("correctness/") and acc is not None}
    return {"human_preference": category_accuracy.get("human_preference"),
            "correctness": sum(sets.values()) / len(sets) if sets else None, "correctness_sets": sets}
