"""Synthetic preference pairs with the J1 recipe: `generate.py synth noisy|math`, with any local model.

    python generate.py synth math --model smollm2-135m-instruct --problems ../shared/data/GSM8K/test.jsonl \
        --samples 4 --limit 50 --out /tmp/math_pairs.jsonl
    python -m pytest tests/data/test_synth.py -q

noisy: for each instruction x the model answers x (chosen), writes a modified instruction x' that is
close to x but asks for something else, then answers x' (rejected: a good answer to the wrong question).
math: k sampled solutions per problem, final answers checked against the gold one (answer_check); one
correct and one incorrect solution make a pair.

Inputs are processed in fixed chunks of --batch-size, each chunk one engine call per stage with a seed
derived from (--seed, chunk index), so a run is deterministic for a seed. Output is appended and flushed
per chunk; inputs that were dropped are appended to `<out>.dropped.jsonl` with the reason. A re-run skips
every source id found in either file, so an interrupted run resumes where it stopped (a chunk cut in the
middle is re-sampled for its missing inputs only, with the chunk's seed).
"""
from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from j1core.data.answer_check import extract_answer, is_correct
from j1core.data.pairs import Pair, stable_hash
from j1core.data.synth_inputs import SourceItem, read_instructions, read_problems
from j1core.errors import UserError

# A pair is near-identical when either measure reaches its threshold (texts lowercased, spaces collapsed):
NEAR_IDENTICAL_RATIO = 0.9     # difflib.SequenceMatcher ratio of the two responses
NEAR_IDENTICAL_OVERLAP = 0.9   # Jaccard overlap of the two responses' word sets

MODIFY_TEMPLATE = (
    "Here is an instruction:\n\n{instruction}\n\n"
    "Write a new instruction on the same topic that looks similar but asks for something different, "
    "so that a good answer to the new instruction would be a poor answer to the original one. "
    "Reply with the new instruction only, between <instruction> and </instruction>.")
MODIFY_PREFILL = "<instruction>"
MATH_TEMPLATES = {
    "gsm8k": "Solve this problem step by step. Write the final answer on the last line as "
             "\"#### <number>\".\n\n{problem}",
    "math500": "Solve this problem step by step. Put the final answer in \\boxed{{}}.\n\n{problem}",
}
MATH_TEMPLATES["jsonl"] = MATH_TEMPLATES["math500"]


@dataclass
class Sample:
    text: str
    num_tokens: int
    truncated: bool  # stopped at max_new_tokens instead of end-of-sequence


@dataclass
class SynthSettings:
    generator: str
    seed: int = 0
    temperature: float = 0.7
    max_new_tokens: int = 256
    samples: int = 4
    batch_size: int = 16


@dataclass
class SynthSummary:
    inputs: int = 0
    already_done: int = 0
    pairs_written: int = 0
    drops: Counter = field(default_factory=Counter)
    tokens_generated: int = 0
    generation_seconds: float = 0.0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        processed = self.inputs - self.already_done
        return {"inputs": self.inputs, "already_done": self.already_done, "processed": processed,
                "pairs_written": self.pairs_written, "yield": self.pairs_written / max(processed, 1),
                "drops": dict(sorted(self.drops.items())), "tokens_generated": self.tokens_generated,
                "seconds": round(self.seconds, 2),
                "tokens_per_s": round(self.tokens_generated / max(self.generation_seconds, 1e-9), 2)}


# ---------------------------------------------------------------- sampling through the rollout engine

class ChatSampler:
    """Chat messages in, decoded samples out, through a RolloutEngine. Tests pass any object with `.sample`."""

    def __init__(self, engine, tokenizer):
        self.engine, self.tokenizer = engine, tokenizer
        stops = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
        self.stop_token_ids = sorted(t for t in stops if isinstance(t, int) and t != tokenizer.unk_token_id)

    def prompt_ids(self, user_message: str, prefill: str = "") -> list[int]:
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": user_message}],
                                                  tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text + prefill, add_special_tokens=False)["input_ids"]

    def sample(self, user_messages, n, max_new_tokens, temperature, seed, prefills=None) -> list[list[Sample]]:
        """n samples per message; prefills[i] starts the reply to message i (a nudge towards a format)."""
        prefills = prefills or [""] * len(user_messages)
        prompts = [self.prompt_ids(message, prefill) for message, prefill in zip(user_messages, prefills)]
        outputs = self.engine.generate(prompts, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                                       seed=seed, stop_token_ids=self.stop_token_ids)
        return [[Sample(self.tokenizer.decode(c.token_ids, skip_special_tokens=True), len(c.token_ids),
                        c.finish_reason == "length") for c in completions] for completions in outputs]


def timed_sample(sampler, summary: SynthSummary, *args, **kwargs) -> list[list[Sample]]:
    start = time.perf_counter()
    samples = sampler.sample(*args, **kwargs)
    summary.generation_seconds += time.perf_counter() - start
    summary.tokens_generated += sum(s.num_tokens for group in samples for s in group)
    return samples


def chunk_seed(seed: int, chunk_index: int, stage: str) -> int:
    return stable_hash("j1-synth", seed, chunk_index, stage) % (2 ** 31)


# ---------------------------------------------------------------- noisy instructions

_INSTRUCTION_TAG = re.compile(r"<\s*(?:new_|modified_)?instruction\s*>(.*?)<\s*/\s*(?:new_|modified_)?"
                              r"instruction\s*>", re.IGNORECASE | re.DOTALL)
_INSTRUCTION_OPEN = re.compile(r"<\s*(?:new_|modified_)?instruction\s*>(.*)", re.IGNORECASE | re.DOTALL)
_INSTRUCTION_LABEL = re.compile(r"^[\s*#>-]*(?:new|modified|rewritten)?\s*instruction\s*\**\s*[:：]\**\s*(.*)",
                                re.IGNORECASE | re.MULTILINE | re.DOTALL)


def parse_modified_instruction(text: str, truncated: bool = False) -> str | None:
    """The new instruction from '<instruction>...</instruction>', an unclosed tag that ended cleanly,
    or a labeled line ('New instruction: ...'); None when none is found or it is empty."""
    found = _INSTRUCTION_TAG.search(text)
    if found:
        return _clean_instruction(found.group(1))
    opened = _INSTRUCTION_OPEN.search(text)
    if opened:
        return None if truncated else _clean_instruction(opened.group(1).split("</", 1)[0])
    labeled = _INSTRUCTION_LABEL.search(text)
    if labeled and not truncated:
        return _clean_instruction(labeled.group(1).split("\n\n", 1)[0])
    return None


def _clean_instruction(text: str) -> str | None:
    cleaned = text.strip().strip("*").strip().strip("\"'“”").strip()
    return cleaned or None


def normalize_text(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def near_identical(a: str, b: str) -> bool:
    """See NEAR_IDENTICAL_RATIO / NEAR_IDENTICAL_OVERLAP."""
    from difflib import SequenceMatcher

    a_norm, b_norm = normalize_text(a), normalize_text(b)
    words_a, words_b = set(a_norm.split()), set(b_norm.split())
    overlap = len(words_a & words_b) / max(len(words_a | words_b), 1)
    return overlap >= NEAR_IDENTICAL_OVERLAP or SequenceMatcher(None, a_norm, b_norm).ratio() >= NEAR_IDENTICAL_RATIO


def response_problem(sample: Sample) -> str | None:
    """Drop reason of a single response, or None when it is usable."""
    if not sample.text.strip():
        return "empty_response"
    if sample.truncated:
        return "too_long"
    return None


def synth_noisy_chunk(items, sampler, settings: SynthSettings, chunk_index: int, summary: SynthSummary):
    """Return (pairs, drops) for one chunk: drops are (item, reason, detail)."""
    n = len(items)
    messages = [it.text for it in items] + [MODIFY_TEMPLATE.format(instruction=it.text) for it in items]
    stage_one = timed_sample(sampler, summary, messages, n=1, max_new_tokens=settings.max_new_tokens,
                             temperature=settings.temperature, seed=chunk_seed(settings.seed, chunk_index, "noisy-1"),
                             prefills=[""] * n + [MODIFY_PREFILL] * n)
    drops, pending = [], []
    for item, chosen, modify in zip(items, stage_one[:n], stage_one[n:]):
        chosen, modify = chosen[0], modify[0]
        modified = parse_modified_instruction(MODIFY_PREFILL + modify.text, modify.truncated)
        reason = ("unparsed" if modified is None
                  else "same_instruction" if normalize_text(modified) == normalize_text(item.text)
                  else response_problem(chosen))
        if reason:
            drops.append((item, reason, {"modify_output": modify.text[:500], "chosen": chosen.text[:500]}))
        else:
            pending.append((item, chosen, modified))
    rejected = timed_sample(sampler, summary, [modified for _, _, modified in pending], n=1,
                            max_new_tokens=settings.max_new_tokens, temperature=settings.temperature,
                            seed=chunk_seed(settings.seed, chunk_index, "noisy-2")) if pending else []
    pairs = []
    for (item, chosen, modified), (reject,) in zip(pending, rejected):
        reason = response_problem(reject) or ("near_identical" if near_identical(chosen.text, reject.text) else None)
        if reason:
            drops.append((item, reason, {"modified_instruction": modified, "rejected": reject.text[:500]}))
            continue
        pairs.append(make_pair(item, "noisy", chosen.text, reject.text, settings, modified_instruction=modified))
    return pairs, drops


# ---------------------------------------------------------------- math with verified answers

def synth_math_chunk(items, sampler, settings: SynthSettings, chunk_index: int, summary: SynthSummary):
    """Return (pairs, drops) for one chunk: the first correct and the first incorrect finished solution."""
    messages = [MATH_TEMPLATES[it.family].format(problem=it.text) for it in items]
    samples = timed_sample(sampler, summary, messages, n=settings.samples,
                           max_new_tokens=settings.max_new_tokens, temperature=settings.temperature,
                           seed=chunk_seed(settings.seed, chunk_index, "math"))
    pairs, drops = [], []
    for item, group in zip(items, samples):
        finished = [s for s in group if s.text.strip() and not s.truncated]
        correct = [s for s in finished if is_correct(s.text, item.gold)]
        incorrect = [s for s in finished if not is_correct(s.text, item.gold)]
        if not correct or not incorrect:
            reason = "no_correct" if not correct else "no_incorrect"
            detail = {"gold": item.gold, "answers": [extract_answer(s.text) for s in finished],
                      "truncated": sum(s.truncated for s in group)}
            drops.append((item, reason, detail))
            continue
        pairs.append(make_pair(item, "math", correct[0].text, incorrect[0].text, settings, gold=item.gold,
                               rejected_answer=extract_answer(incorrect[0].text)))
    return pairs, drops


# ---------------------------------------------------------------- output, resume, driver

def pair_id(mode: str, source_id: str) -> str:
    return f"synth-{mode}-{source_id}"


def make_pair(item: SourceItem, mode: str, chosen: str, rejected: str, settings: SynthSettings, **extra) -> dict:
    """A j1 Pair record plus provenance fields (load_pairs ignores fields it does not know)."""
    pair = Pair(pair_id(mode, item.source_id), item.text, chosen.strip(), rejected.strip(), f"synth-{mode}",
                item.category)
    return {**pair.to_dict(), "generator": settings.generator, "seed": settings.seed,
            "source_id": item.source_id, "family": item.family, "temperature": settings.temperature, **extra}


def dropped_path(out: Path) -> Path:
    return out.with_name(out.name + ".dropped.jsonl")


def done_source_ids(out: Path) -> set[str]:
    """Source ids already written or dropped by an earlier run (a cut-off last line is ignored)."""
    done = set()
    for path in (out, dropped_path(out)):
        if path.is_file():
            trim_partial_line(path)
            for raw in path.read_text(encoding="utf-8").splitlines():
                if raw.strip():
                    done.add(json.loads(raw)["source_id"])
    return done


def trim_partial_line(path: Path) -> None:
    """Cut a last line that a killed run left without its newline."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[:data.rfind(b"\n") + 1])


def append_lines(path: Path, rows) -> None:
    with path.open("a", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()


def log(message: str) -> None:
    print(message, flush=True)


def run_synth_items(mode: str, items, sampler, out, settings: SynthSettings, progress=log) -> dict:
    """Generate pairs for `items` into `out` (appending, skipping done source ids); return the summary."""
    chunk_fn = {"noisy": synth_noisy_chunk, "math": synth_math_chunk}[mode]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_source_ids(out)
    summary = SynthSummary(inputs=len(items), already_done=sum(it.source_id in done for it in items))
    start = time.perf_counter()
    for chunk_index in range((len(items) + settings.batch_size - 1) // settings.batch_size):
        chunk = items[chunk_index * settings.batch_size:(chunk_index + 1) * settings.batch_size]
        todo = [it for it in chunk if it.source_id not in done]
        if not todo:
            continue
        pairs, drops = chunk_fn(todo, sampler, settings, chunk_index, summary)
        append_lines(out, pairs)
        append_lines(dropped_path(out), [{"source_id": it.source_id, "reason": reason, **detail}
                                         for it, reason, detail in drops])
        summary.pairs_written += len(pairs)
        summary.drops.update(reason for _, reason, _ in drops)
        if progress:
            progress(f"synth {mode}: chunk {chunk_index + 1}: {summary.pairs_written} pairs, "
                     f"{sum(summary.drops.values())} dropped, {summary.tokens_generated} tokens")
    summary.seconds = time.perf_counter() - start
    return summary.as_dict()


def add_synth_args(parser: argparse.ArgumentParser) -> None:
    """Flags of `generate.py synth`: a positional mode (noisy | math) and the generation settings."""
    parser.add_argument("mode", choices=("noisy", "math"), help="noisy instructions or verified math answers")
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--prompts", help="noisy: JSONL with prompt/instruction, a JSON list, or FollowBench JSON/dir")
    io.add_argument("--problems", help="math: GSM8K (question, answer '#### N') or MATH-500 (problem, answer) JSONL")
    io.add_argument("--out", required=True, help="output JSONL of pairs (appended; re-runs resume)")
    io.add_argument("--limit", type=int, default=None, help="use only the first N inputs")
    model = parser.add_argument_group("model")
    model.add_argument("--model", default="smollm2-135m-instruct", help="local HF directory or alias")
    model.add_argument("--model-cache", default=None, help="cache directory for the bundled model")
    model.add_argument("--device", default="auto", help="cpu | cuda | auto")
    model.add_argument("--dtype", default="fp32", help="fp32 | bf16 | fp16")
    gen = parser.add_argument_group("generation")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--temperature", type=float, default=0.7)
    gen.add_argument("--max-new-tokens", type=int, default=256)
    gen.add_argument("--samples", type=int, default=4, help="math: solutions sampled per problem")
    gen.add_argument("--batch-size", type=int, default=16, help="inputs per engine call (fixes the seeds)")
    gen.add_argument("--max-batch-tokens", type=int, default=65536, help="rollout engine token budget")



def run_synth(args) -> dict:
    """`generate.py synth`: load inputs and the model, generate, print and return the summary."""
    from j1core.engine.rollout import RolloutEngine
    from j1core.model import load_model, pick_device

    if args.mode == "noisy" and not args.prompts:
        raise UserError("synth noisy needs --prompts FILE")
    if args.mode == "math" and not args.problems:
        raise UserError("synth math needs --problems FILE")
    for name in ("limit", "max_new_tokens", "samples", "batch_size", "max_batch_tokens"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}")
    if not args.temperature >= 0:
        raise UserError(f"--temperature: must be >= 0, got {args.temperature}")
    items = read_instructions(args.prompts) if args.mode == "noisy" else read_problems(args.problems)
    items = items[:args.limit] if args.limit is not None else items
    device = str(pick_device(args.device))
    model, tokenizer = load_model(args.model, dtype=args.dtype, device=device, cache_dir=args.model_cache)
    engine = RolloutEngine(model, tokenizer, max_batch_tokens=args.max_batch_tokens, device=device)
    settings = SynthSettings(args.model, args.seed, args.temperature, args.max_new_tokens, args.samples,
                             args.batch_size)
    summary = run_synth_items(args.mode, items, ChatSampler(engine, tokenizer), args.out, settings)
    print(json.dumps(summary))
    print(f"synth {args.mode}: {summary['pairs_written']} pairs from {summary['processed']} inputs "
          f"(yield {summary['yield']:.2f}), drops {summary['drops']}, {summary['tokens_generated']} tokens, "
          f"{summary['tokens_per_s']} tok/s, {summary['seconds']} s -> {args.out}")
    return summary
