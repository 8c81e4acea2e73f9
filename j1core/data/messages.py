"""Multi-turn prompts: a conversation (a list of chat messages) as a pair's prompt, checked and written out.

    python -m pytest tests/data/test_pairs.py tests/judge/test_prompts.py -q

A prompt is either a string or a non-empty list of {"role", "content"} messages with roles user, assistant
or system (the conversation the judged responses continue). The judge reads it inside its one template, as a
transcript, "[User]: ...\\n[Assistant]: ...\\n[User]: ...", rather than as turns of its own chat: the judge's
messages are its instructions and the judged material, and a transcript keeps both orders of a pair sharing
their prefix. A conversation of one user message is that message's text, so it judges exactly as the string.
"""
from __future__ import annotations

import json

ROLES = {"user": "User", "assistant": "Assistant", "system": "System"}


def conversation_problem(messages, field: str = "prompt") -> tuple[str, str, str] | None:
    """(field, reason, detail) of the first thing wrong with a conversation, or None; the field names the
    message and key, e.g. "prompt[2].role". Reasons are those of j1core/data/pairs.REASONS."""
    if not messages:
        return field, "empty_text", "an empty list of messages"
    for i, message in enumerate(messages):
        where = f"{field}[{i}]"
        if not isinstance(message, dict):
            return where, "wrong_type", f"expected a message object, got {type(message).__name__}"
        for key in ("role", "content"):
            if key not in message:
                return f"{where}.{key}", "missing_field", "missing"
            if not isinstance(message[key], str):
                return f"{where}.{key}", "wrong_type", f"expected a string, got {type(message[key]).__name__}"
        if message["role"] not in ROLES:
            return f"{where}.role", "wrong_type", f"role {message['role']!r} is not one of {', '.join(ROLES)}"
        if not message["content"].strip():
            return f"{where}.content", "empty_text", "empty text"
    return None


def check_prompt(prompt, field: str = "prompt"):
    """A prompt as given (a string) or its messages reduced to role and content; ValueError naming the field."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError(f"{field}: empty text")
        return prompt
    if not isinstance(prompt, (list, tuple)):
        raise ValueError(f"{field}: expected a string or a list of messages, got {type(prompt).__name__}")
    problem = conversation_problem(prompt, field)
    if problem:
        raise ValueError(f"{problem[0]}: {problem[2]}")
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


def transcript(prompt) -> str:
    """The prompt as the judge reads it: a string as is; one user message as its text; else one line block a
    message, "[Role]: content", separated by newlines."""
    if isinstance(prompt, str):
        return prompt
    if len(prompt) == 1 and prompt[0]["role"] == "user":
        return prompt[0]["content"]
    return "\n".join(f"[{ROLES[m['role']]}]: {m['content'].strip()}" for m in prompt)


def prompt_key(prompt) -> str:
    """A string that identifies a prompt (a hashable key for grouping pairs by prompt)."""
    return prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False, sort_keys=True)
