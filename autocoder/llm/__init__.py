"""The LLM layer: a swappable model on any OpenAI-compatible endpoint, versioned prompts, a disk
cache, plain-function tasks (``rag_pick``, ``synth``) and a local llama.cpp server manager.

Importing this package loads no client and reads no environment variable.
"""

from autocoder.llm.cache import LLMCache, cache_key
from autocoder.llm.client import LLMError, LLMModel, LLMResponseError, parse_json_object
from autocoder.llm.prompts import PromptError, PromptTemplate, load_prompt
from autocoder.llm.tasks import AnswerError, LLMRequest, run_requests

__all__ = [
    "AnswerError",
    "LLMCache",
    "LLMError",
    "LLMModel",
    "LLMRequest",
    "LLMResponseError",
    "PromptError",
    "PromptTemplate",
    "cache_key",
    "load_prompt",
    "parse_json_object",
    "run_requests",
]
