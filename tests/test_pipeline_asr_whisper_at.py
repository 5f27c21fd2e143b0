"""The Hub's "Use this model" snippet: stock pipeline("automatic-speech-recognition") on a Whisper-AT checkpoint.

Before: `AttributeError: 'NoneType' object has no attribute 'argmax'` (transformers treats a non-"whisper" model type
as CTC). Now checkpoints carry `custom_pipelines["automatic-speech-recognition"]`; with trust_remote_code=True (what
the Hub's snippet adds for repos with custom code) the text is plain Whisper's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import SHARED_AUDIO, TINY_EN, tiny_whisper
from transformers import AutomaticSpeechRecognitionPipeline, WhisperProcessor, pipeline

import whisper_at_hf  # noqa: F401  (registers the classes)
from whisper_at_hf import WhisperForAudioTaggingAndASR
from whisper_at_hf.audio import load_audio
from whisper_at_hf.pipeline_asr_whisper_at import WHISPER_PROCESSING, WhisperATSpeechRecognitionPipeline

pytestmark = pytest.mark.needs_shared  # real weights / clips from ../shared

GREEDY = {"num_beams": 1, "max_new_tokens": 40}


@pytest.fixture(scope="module")
def speech(shared_dir) -> dict:
    # ffmpeg may be missing on CI: the stock ASR pipeline needs it for file paths, so inputs are decoded arrays
    return {"raw": load_audio(SHARED_AUDIO / "speech_en.wav").array, "sampling_rate": 16000}


def test_upstream_asr_pipeline_keys_whisper_processing_on_model_type(tmp_path):
    """Pins the transformers behaviour the subclass relies on: `type` selects the processing; "seq2seq_whisper" for
    model_type "whisper", CTC for any other model type (ours included) — which is why the subclass exists."""
    processor = WhisperProcessor.from_pretrained(TINY_EN)
    kwargs = dict(tokenizer=processor.tokenizer, feature_extractor=processor.feature_extractor)
    whisper = tiny_whisper()
    assert AutomaticSpeechRecognitionPipeline(model=whisper, **kwargs).type == WHISPER_PROCESSING
    ours = WhisperForAudioTaggingAndASR.from_whisper(whisper)
    assert AutomaticSpeechRecognitionPipeline(model=ours, **kwargs).type == "ctc"
    assert WhisperATSpeechRecognitionPipeline(model=ours, **kwargs).type == WHISPER_PROCESSING


def test_saved_checkpoint_carries_the_asr_entry(tiny_en_at_dir):
    config = json.loads((tiny_en_at_dir / "config.json").read_text())
    entry = config["custom_pipelines"]["automatic-speech-recognition"]
    assert entry["impl"] == "pipeline_asr_whisper_at.WhisperATSpeechRecognitionPipeline"
    assert (tiny_en_at_dir / "pipeline_asr_whisper_at.py").is_file()
    assert "whisper-at-remote-code" in config["custom_pipelines"]  # the tagging pipeline's entry is still there


def test_stock_asr_pipeline_with_trust_remote_code_matches_plain_whisper(tiny_en_at_dir, speech):
    plain = pipeline("automatic-speech-recognition", model=str(TINY_EN), dtype=torch.float32)
    expected = plain(dict(speech), generate_kwargs=GREEDY)["text"]
    asr = pipeline(
        "automatic-speech-recognition", model=str(tiny_en_at_dir), trust_remote_code=True, dtype=torch.float32
    )
    assert type(asr).__name__ == "WhisperATSpeechRecognitionPipeline"
    assert asr(dict(speech), generate_kwargs=GREEDY)["text"] == expected
    assert expected.strip().startswith("The quick") and "background noise" in expected
    # Whisper's options work as with plain Whisper
    stamped = asr(dict(speech), return_timestamps=True, generate_kwargs=GREEDY)
    assert stamped["chunks"] and stamped["chunks"][0]["timestamp"][0] == 0.0


def test_init_time_kwargs_are_checked_as_whispers(tiny_en_at_dir, speech):
    """Kwargs given to `pipeline(...)` itself are checked while the pipeline is being built: with Whisper's
    processing already (a CTC pipeline refuses `return_language` and `return_timestamps=True`)."""
    init_kwargs = dict(return_timestamps=True, return_language=True, generate_kwargs=GREEDY)
    plain = pipeline("automatic-speech-recognition", model=str(TINY_EN), dtype=torch.float32, **init_kwargs)
    asr = pipeline(
        "automatic-speech-recognition", model=str(tiny_en_at_dir), trust_remote_code=True, dtype=torch.float32,
        **init_kwargs,
    )
    assert asr.type == WHISPER_PROCESSING
    result = asr(dict(speech))
    assert result == plain(dict(speech))
    assert result["chunks"] and "language" in result["chunks"][0]


def test_stock_asr_pipeline_without_trust_remote_code_says_what_to_do(tiny_en_at_dir):
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        pipeline("automatic-speech-recognition", model=str(tiny_en_at_dir))


@pytest.mark.slow
def test_hub_snippet_runs_where_the_package_is_not_installed(tiny_en_at_dir, tmp_path, speech):
    """The card's snippet, verbatim but for the repo id and the audio, in a Python without whisper_at_hf."""
    from whisper_at_hf.model_card import model_card_for_model

    model = WhisperForAudioTaggingAndASR.from_pretrained(tiny_en_at_dir)
    card = model_card_for_model(model, "whisper-at-test", repo_id="REPO")
    snippet = next(block for block in _python_blocks(card) if "automatic-speech-recognition" in block)
    assert "trust_remote_code=True" in snippet and "import whisper_at_hf" not in snippet
    np.save(tmp_path / "speech.npy", speech["raw"])
    script = (
        "import sys\n"
        'sys.modules["whisper_at_hf"] = None  # the package must not be importable here\n'
        "import numpy as np\n"
        f"AUDIO = {{'raw': np.load({str(tmp_path / 'speech.npy')!r}), 'sampling_rate': 16000}}\n"
        + snippet.replace('"REPO"', repr(str(tiny_en_at_dir))).replace('"audio.wav"', "AUDIO")
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-4000:]
    assert "The quick brown fox" in out.stdout, out.stdout  # default decoding (beam search), as the card shows


def _python_blocks(card: str) -> list[str]:
    blocks, current = [], None
    for line in card.splitlines():
        if line.strip() == "```python":
            current = []
        elif line.strip() == "```" and current is not None:
            blocks.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks

