"""Pairs that fit the model: every judge prompt plus its completion within the model's context, checked on
token counts before any model call.

    python train.py --data pairs.jsonl --truncate          # cut what does not fit instead of refusing it
    python -m pytest tests/data/test_fit.py -q

A judge prompt holds the instruction and one (pointwise) or both (pairwise) responses inside the format's
template. fit_pairs measures each text in tokens (one batched tokenizer call) plus the template's own tokens,
and compares that with context - completion tokens. Texts far too long to fit are caught on their length in
characters first (no token is longer than the vocabulary's longest entry), so a 10 MB response is never
tokenized whole. Pairs near the limit are measured exactly on their rendered prompts.

What does not fit is refused (a UserError naming the pair), dropped and counted with --skip-invalid, or with
--truncate cut: the longest texts lose their ends first, all down to one common cap in tokens (the instruction
too, when it is the longest), and a cut text ends with " [...]". A pair whose two responses become identical
once cut is dropped as too long.
"""
from __future__ import annotations

import dataclasses
import warnings

from j1core.data.messages import transcript
from j1core.errors import UserError
from j1core.judge.prompts import judge_prompt_ids

CUT_MARK = " [...]"
MARGIN = 16  # tokens: template boundaries can merge or split a token or two per text


def context_length(model) -> int | None:
    """The longest sequence the model takes (max_position_embeddings), or None when it does not say."""
    config = getattr(model, "config", None) or getattr(getattr(model, "module", None), "config", None)
    value = getattr(config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def formats_of(fmt: str) -> tuple[str, ...]:
    return ("pairwise", "pointwise") if fmt == "mixed" else (fmt,)


def overhead(tokenizer, fmt: str, style: str) -> int:
    """Tokens of the judge prompt besides its texts (each text is one "x" here)."""
    pairwise = fmt != "pointwise"
    return len(judge_prompt_ids(tokenizer, fmt, "x", "x", "x" if pairwise else None, style=style)) - (
        3 if pairwise else 2)


def texts_of(pair) -> tuple[str, str, str]:
    """The pair's texts as the judge prompt holds them (a conversation as its transcript, which is also what a
    cut conversation becomes)."""
    return transcript(pair.prompt), pair.chosen, pair.rejected


def need(fmt: str, fixed: int, p: int, a: int, b: int) -> int:
    """Prompt tokens of a pair in format fmt: pairwise shows both responses, pointwise the longer of the two."""
    return fixed + p + (a + b if fmt != "pointwise" else max(a, b))


def exact_need(tokenizer, fmt: str, style: str, pair) -> int:
    if fmt == "pointwise":
        return max(len(judge_prompt_ids(tokenizer, fmt, pair.prompt, r, None, style=style))
                   for r in (pair.chosen, pair.rejected))
    return len(judge_prompt_ids(tokenizer, fmt, pair.prompt, pair.chosen, pair.rejected, style=style))


def common_cap(lengths, fits) -> int:
    """The largest cap c with fits([min(n, c) for n in lengths]) (binary search; fits is monotone)."""
    low, high = 0, max(lengths)
    while low < high:
        mid = (low + high + 1) // 2
        if fits([min(n, mid) for n in lengths]):
            low = mid
        else:
            high = mid - 1
    return low


def fit_pairs(pairs, tokenizer, fmt: str, style: str, context: int | None, completion: int,
              truncate: bool = False, skip_invalid: bool = False, where: str = "data",
              drop_flag: str | None = "--skip-invalid", kv_budget: int | None = None):
    """(pairs that fit, number dropped, number cut); see the module docstring. drop_flag: the flag named in
    the refusal for dropping such pairs (None: there is none). kv_budget: the most prompt tokens the rollout
    engine's KV budget leaves for one prompt (--max-batch-tokens less its samples' tokens), when lower."""
    if context is None or not pairs:
        return list(pairs), 0, 0
    budget = context - completion
    if kv_budget is not None and kv_budget < budget:
        budget, context = kv_budget, kv_budget + completion  # the limit the messages below name
    formats = formats_of(fmt)
    fixed = {f: overhead(tokenizer, f, style) for f in formats}
    limit = budget - max(fixed.values())
    if limit < 3 * (len(CUT_MARK) + 8):
        raise UserError(f"the model's context ({context} tokens) leaves {budget} tokens for a judge prompt after "
                        f"{completion} completion tokens: too few for the template; lower --max-new-tokens (or raise "
                        "--max-batch-tokens)")
    chars_per_token = max(len(t) for t in tokenizer.get_vocab())
    max_chars = limit * chars_per_token  # a text longer than this cannot fit, whatever it holds
    # A token covers at least one byte of its text: pairs that fit on UTF-8 byte counts fit, untokenized.
    sizes = [[len(t.encode("utf-8", "surrogatepass")) for t in texts_of(p)] for p in pairs]
    measured = [i for i, n in enumerate(sizes) if any(need(f, fixed[f], *n) > budget - MARGIN for f in formats)]
    texts = [t[: max_chars + 1] for i in measured for t in texts_of(pairs[i])]
    flat = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    counts = {i: flat[3 * k: 3 * k + 3] for k, i in enumerate(measured)}
    kept, dropped, cut, first = [], 0, 0, None
    for i, pair in enumerate(pairs):
        if i not in counts:
            kept.append(pair)
            continue
        ids = list(counts[i])
        lengths = [len(x) for x in ids]
        over = any(need(f, fixed[f], *lengths) > budget - MARGIN for f in formats)
        if over and not any(len(t) > max_chars for t in texts_of(pair)):
            over = any(exact_need(tokenizer, f, style, pair) > budget for f in formats)
        if over and truncate:
            pair = cut_pair(pair, ids, tokenizer, formats, fixed, style, budget)
            cut += pair is not None
        elif over:
            pair = None
        if pair is None:
            dropped += 1
            first = first or (pairs[i].id, sum(lengths))
            continue
        kept.append(pair)
    if dropped and not skip_invalid:
        pair_id, tokens = first
        how = "cannot be cut to fit (identical responses once cut)" if truncate else \
            "pass --truncate to cut it" + (f" or {drop_flag} to drop it" if drop_flag else "")
        raise UserError(f"{where}: pair {pair_id!r} does not fit the model: its texts hold {tokens} tokens, the "
                        f"context (or --max-batch-tokens) allows {context} tokens with {completion} for the "
                        f"completion; {how}")
    if dropped:
        warnings.warn(f"{where}: skipped {dropped} pairs too long for the model's context ({context} tokens) "
                      f"[too_long={dropped}]", stacklevel=2)
    if not kept:
        raise UserError(f"{where}: no pair fits the model's context ({context} tokens)")
    return kept, dropped, cut


def cut_pair(pair, ids, tokenizer, formats, fixed, style, budget):
    """The pair with its longest texts cut to one common cap (see the module docstring), or None."""
    mark = len(tokenizer(CUT_MARK, add_special_tokens=False)["input_ids"])
    slack = MARGIN
    for _ in range(4):
        lengths = [len(x) for x in ids]

        def fits(capped, lengths=lengths, slack=slack):
            extra = [mark if c < n else 0 for c, n in zip(capped, lengths)]
            sizes = [c + e for c, e in zip(capped, extra)]
            return all(need(f, fixed[f], *sizes) <= budget - slack for f in formats)

        cap = common_cap(lengths, fits)
        if cap < 1:
            return None
        texts = [tokenizer.decode(x[:cap]) + CUT_MARK if len(x) > cap else original
                 for x, original in zip(ids, (pair.prompt, pair.chosen, pair.rejected))]
        candidate = dataclasses.replace(pair, prompt=texts[0], chosen=texts[1], rejected=texts[2])
        if candidate.chosen.strip() == candidate.rejected.strip():
            return None
        if all(exact_need(tokenizer, f, style, candidate) <= budget for f in formats):
            return candidate
        slack *= 2
    return None
