"""The node registry of Flowcraft's declarative LLM workflow examples, with a deterministic stub
in place of the LLM call, so the example blueprints run reproducibly and offline.

``llm-process`` renders ``params.promptTemplate`` (``{{key}}`` placeholders filled from
``params.inputs``; each source key is tried as ``_outputs.<key>`` and then ``<key>``; a list of
sources takes the first that exists), calls the LLM and outputs its text. ``llm-condition``
outputs ``"true"``/``"false"`` and takes the action of the same name; ``llm-router`` takes the LLM's
trimmed text as its action; ``output`` renders its template into ``params.outputKey``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bullflow import NodeContext, NodeResult

_PLACEHOLDER = re.compile(r"\{\{\s*([\w.-]+)\s*\}\}")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
_PHONE = re.compile(r"\b\d{3}[-. ]\d{3}[-. ]\d{4}\b")
_SKILLS = ("TypeScript", "JavaScript", "Node.js", "SQL", "Python", "React", "Docker", "AWS")


def fake_llm(prompt: str) -> str:
    """A deterministic stand-in for an LLM: answers the examples' prompts by simple rules."""
    text = _quoted_text(prompt)
    lower = prompt.lower()
    if "personally identifiable information" in lower and "find any" in lower:
        return _PHONE.sub("[REDACTED]", _EMAIL.sub("[REDACTED]", text))
    if "personally identifiable information" in lower:
        return "true" if _EMAIL.search(text) or _PHONE.search(text) else "false"
    if "hate speech" in lower and "severity" in lower:
        words = text.lower()
        if any(w in words for w in ("kill", "exterminate", "vermin")):
            return "severe"
        return "moderate" if any(w in words for w in ("hate", "idiot", "stupid")) else "none"
    if "commercial spam" in lower:
        words = text.lower()
        return (
            "true"
            if any(w in words for w in ("buy now", "http://", "https://", "free money", "click here"))
            else "false"
        )
    if "action codes" in lower:
        hate = _field(prompt, "Hate Speech Level")
        if hate == "severe":
            return "action_ban"
        if _field(prompt, "PII Found") == "true":
            return "action_redact"
        if _field(prompt, "Spam Detected") == "true":
            return "action_delete_spam"
        return "action_approve"
    if "technical skills" in lower:
        return ", ".join(s for s in _SKILLS if s.lower() in prompt.lower())
    if "analyze the tone" in lower:
        return "casual" if any(w in prompt.lower() for w in ("hey", "yo ", "lol")) else "professional"
    if "required skills" in lower:
        skills_match = re.search(r"list of skills `([^`]*)`", prompt)
        skills = skills_match.group(1).lower() if skills_match else ""
        tone_match = re.search(r"cover letter tone `([^`]*)`", prompt)
        tone = tone_match.group(1).strip().lower() if tone_match else ""
        ok = all(s in skills for s in ("typescript", "node.js", "sql")) and tone == "professional"
        return "true" if ok else "false"
    if "sentiment" in lower and ("'true'" in lower or "true" in lower.split()[-3:]):
        return (
            "false"
            if any(w in text.lower() for w in ("broken", "terrible", "refund", "angry", "bad"))
            else "true"
        )
    first_line = prompt.strip().splitlines()[0] if prompt.strip() else ""
    return f"[stub-llm] {first_line[:120]}"


def _quoted_text(prompt: str) -> str:
    match = re.search(r'Text: "(.*)"', prompt, re.S) or re.search(r'Original Text: "(.*)"', prompt, re.S)
    return match.group(1) if match else prompt


def _field(prompt: str, name: str) -> str:
    match = re.search(rf"- {re.escape(name)}: (\S+)", prompt)
    return match.group(1).strip().lower() if match else ""


async def _render(ctx: NodeContext) -> str:
    template = str(ctx.params.get("promptTemplate", ""))
    sources = ctx.params.get("inputs") or {}
    values: dict[str, Any] = {}
    if isinstance(sources, Mapping):
        for name, source in sources.items():
            candidates = source if isinstance(source, list) else [source]
            value = None
            for candidate in candidates:
                for key in (f"_outputs.{candidate}", str(candidate)):
                    if await ctx.has(key):
                        value = await ctx.get(key)
                        break
                if value is not None:
                    break
            if value is None:
                ctx.logger.warning("template variable {{%s}} could not be resolved from %s", name, candidates)
            values[str(name)] = value
    return _PLACEHOLDER.sub(
        lambda m: "" if values.get(m.group(1)) is None else str(values[m.group(1)]), template
    )


async def llm_process(ctx: NodeContext) -> str:
    return fake_llm(await _render(ctx))


async def llm_condition(ctx: NodeContext) -> NodeResult:
    verdict = "true" if "true" in fake_llm(await _render(ctx)).lower() else "false"
    return NodeResult(output=verdict, action=verdict)


async def llm_router(ctx: NodeContext) -> NodeResult:
    action = fake_llm(await _render(ctx)).strip()
    return NodeResult(output=action, action=action)


async def output_node(ctx: NodeContext) -> str:
    text = await _render(ctx)
    await ctx.set(str(ctx.params.get("outputKey") or "final_output"), text)
    return text


REGISTRY = {
    "llm-process": llm_process,
    "llm-condition": llm_condition,
    "llm-router": llm_router,
    "output": output_node,
}
