"""Plain, slow versions of the engine's fast paths, for the tests to compare against (the library never
imports them): top-k / top-p filtering row by row, decode attention with a per-row copy of the prompt KV,
and log-probs of a completion from one teacher-forced HF forward.
"""
import torch
import torch.nn.functional as F

from j1core.engine.sampling import NEG_INF


def filter_logits_reference(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Plain per-row version of j1core.engine.sampling.filter_logits."""
    out = logits.clone()
    for row in out:
        order = sorted(range(row.numel()), key=lambda i: -float(row[i]))
        if top_k and 0 < top_k < row.numel():
            threshold = float(row[order[top_k - 1]])
            row[row < threshold] = NEG_INF
        if top_p < 1.0:
            probs = torch.softmax(row, dim=-1)
            covered = 0.0
            for i in order:
                if covered >= top_p:
                    row[i] = NEG_INF
                covered += float(probs[i])
    return out


def shared_prompt_attention_reference(q, prompt_keys, prompt_values, prompt_valid, gen_keys, gen_values,
                                      prompt_of):
    """Plain version of j1core.engine.attention.SharedPromptAttention: each row attends to its own copy of
    [prompt KV (valid columns), generated KV].

    q [B, H, 1, D]; prompt_keys/values [P, KV, W, D]; prompt_valid [P, W] bool; gen_keys/values [B, KV, T, D];
    prompt_of [B] prompt index of each row.
    """
    outs = []
    for row in range(q.shape[0]):
        p = int(prompt_of[row])
        keys = torch.cat((prompt_keys[p][:, prompt_valid[p]], gen_keys[row]), dim=1)
        values = torch.cat((prompt_values[p][:, prompt_valid[p]], gen_values[row]), dim=1)
        outs.append(F.scaled_dot_product_attention(q[row:row + 1], keys[None], values[None], enable_gqa=True))
    batch, heads, _, dim = q.shape
    return torch.cat(outs).reshape(batch, 1, heads * dim)


def teacher_forced_logprobs(model, prompt, completion, temperature=1.0):
    """log p(completion token | prefix) at temperature T from one plain forward of prompt + completion."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1:-1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, ids[0, len(prompt):, None]).squeeze(-1)
