"""`python -m j1core.data.builtin`: pairs per family and split, how often the chosen response is the longer,
how many train pairs --flip-length can show with the length relation reversed (the pairs it trains on), and a
few samples. `--seed N` draws another pool."""
from __future__ import annotations

import argparse
import random
import time
from collections import Counter

from j1core.data.builtin import FAMILIES, SPLITS, all_builtin_pairs, family_of, length_flipped, split_of


def longer_counts(pairs) -> tuple[int, int, int]:
    """(chosen longer, rejected longer, same length), in characters."""
    chosen = sum(len(p.chosen) > len(p.rejected) for p in pairs)
    rejected = sum(len(p.chosen) < len(p.rejected) for p in pairs)
    return chosen, rejected, len(pairs) - chosen - rejected


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=6)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    pairs = all_builtin_pairs(args.seed)
    seconds = time.perf_counter() - start
    counts = Counter((family_of(p), split_of(p)) for p in pairs)
    families = [module.FAMILY for module in FAMILIES]
    print(f"{len(pairs)} pairs in {seconds:.1f} s (seed {args.seed})\n")
    print(f"{'family':12s} {'templates':>9s} " + " ".join(f"{s:>16s}" for s in SPLITS) + "  chosen longer")
    for family in families + ["all"]:
        mine = [p for p in pairs if family in ("all", family_of(p))]
        templates = len({p.category for p in mine})
        chosen, rejected, same = longer_counts(mine)
        row = " ".join(f"{sum(counts[(f, s)] for f in families if family in ('all', f)):16d}" for s in SPLITS)
        print(f"{family:12s} {templates:9d} {row}  {chosen / len(mine):.3f} (rejected {rejected / len(mine):.3f}, "
              f"same {same / len(mine):.3f})")
    chosen, rejected, _ = longer_counts(pairs)
    print(f"\nchosen longer than rejected: {chosen / len(pairs):.3f} of all pairs, "
          f"{chosen / max(chosen + rejected, 1):.3f} of pairs whose lengths differ")
    train = [p for p in pairs if split_of(p) == "train"]
    flippable = sum(length_flipped(p) is not None for p in train)
    print(f"--flip-length reverses which response is longer in {flippable} of {len(train)} train pairs "
          f"({flippable / len(train):.3f}), and trains on those")
    for p in random.Random(args.seed).sample(pairs, args.samples):
        print(f"\n[{p.category}, {split_of(p)}] {p.prompt}\n  chosen:   {p.chosen}\n  rejected: {p.rejected}")


if __name__ == "__main__":
    main()
