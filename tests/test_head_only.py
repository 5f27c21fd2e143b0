"""Head-only (PEFT-style) checkpoints: save only the head, attach it to the named or another Whisper."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import REPO_ROOT, tiny_whisper
from safetensors import safe_open
from transformers import AutoModelForSpeechSeq2Seq

from whisper_at_hf import WhisperATConfig, WhisperForAudioTaggingAndASR
from whisper_at_hf.head_only import HEAD_ONLY_MARKER
from whisper_at_hf.modeling_whisper_at import HEAD_WEIGHTS_NAME

LABELS = {0: "Speech", 1: "Music", 2: "Dog"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A base Whisper dir, a model with a trained-looking head on it, and that model saved head-only."""
    root = tmp_path_factory.mktemp("head_only")
    tiny_whisper(seed=0).save_pretrained(root / "base")
    tiny_whisper(seed=1).save_pretrained(root / "other_base")  # same dims, other weights
    model = WhisperForAudioTaggingAndASR.from_whisper(str(root / "base"), id2label=LABELS, at_low_dim=32)
    torch.manual_seed(2)
    with torch.no_grad():
        for param in model.audio_tagging_head.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    model.eval()
    model.save_pretrained(root / "head", head_only=True)
    features = torch.randn(2, 80, 3000, generator=torch.Generator().manual_seed(0))
    return dict(root=root, model=model, features=features)


def test_head_only_files(saved):
    head_dir = saved["root"] / "head"
    names = {path.name for path in head_dir.iterdir()}
    data_files = {name for name in names if not name.endswith(".py")}
    assert data_files == {HEAD_WEIGHTS_NAME, "config.json"}  # no Whisper weights
    # code for trust_remote_code: the model's and the pipeline's
    assert {"configuration_whisper_at.py", "modeling_whisper_at.py", "pipeline_whisper_at.py"} <= names
    with safe_open(head_dir / HEAD_WEIGHTS_NAME, "pt") as weights:
        keys = set(weights.keys())
    assert keys == {f"audio_tagging_head.{key}" for key in saved["model"].audio_tagging_head.state_dict()}
    config = json.loads((head_dir / "config.json").read_text())
    assert config["base_model_name_or_path"] == str(saved["root"] / "base")
    assert config["architectures"] == ["WhisperForAudioTaggingAndASR"]
    assert config["auto_map"]["AutoModelForSpeechSeq2Seq"] == "modeling_whisper_at.WhisperForAudioTaggingAndASR"
    assert config["at_low_dim"] == 32 and config["id2label"] == {str(k): v for k, v in LABELS.items()}


def test_round_trip(saved):
    model, features = saved["model"], saved["features"]
    for loader in (WhisperForAudioTaggingAndASR, AutoModelForSpeechSeq2Seq):
        loaded = loader.from_pretrained(saved["root"] / "head")
        assert isinstance(loaded, WhisperForAudioTaggingAndASR) and not loaded.training
        assert loaded.config.id2label == LABELS and loaded.config.at_low_dim == 32
        assert loaded.config.base_model_name_or_path == str(saved["root"] / "base")
        with torch.no_grad():
            assert torch.equal(loaded.tag(features), model.tag(features))
            if loader is WhisperForAudioTaggingAndASR:  # the base's generation config came along
                assert torch.equal(
                    loaded.generate(features[:1], max_new_tokens=3), model.generate(features[:1], max_new_tokens=3)
                )
        # only the head trains, as after from_whisper
        assert all(p.requires_grad == n.startswith("audio_tagging_head.") for n, p in loaded.named_parameters())
    loaded, info = WhisperForAudioTaggingAndASR.from_pretrained(saved["root"] / "head", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []


def test_loading_kwargs_reach_the_base_whisper(saved, tmp_path):
    """`dtype` is a config attribute in transformers 5: it must still choose the weights' dtype of the base."""
    tiny_whisper(seed=0).to(torch.float16).save_pretrained(tmp_path / "fp16_base")
    model = WhisperForAudioTaggingAndASR.from_pretrained(
        saved["root"] / "head", base_model=str(tmp_path / "fp16_base"), dtype=torch.float32
    )
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    half = WhisperForAudioTaggingAndASR.from_pretrained(saved["root"] / "head", dtype=torch.float16)
    assert next(half.model.encoder.parameters()).dtype == torch.float16


def test_full_save_of_a_model_built_from_a_head_only_config_is_full(saved, tmp_path):
    config = WhisperATConfig.from_pretrained(saved["root"] / "head")
    assert getattr(config, HEAD_ONLY_MARKER)
    WhisperForAudioTaggingAndASR(config).save_pretrained(tmp_path / "full")
    assert HEAD_ONLY_MARKER not in json.loads((tmp_path / "full" / "config.json").read_text())
    loaded = WhisperForAudioTaggingAndASR.from_pretrained(tmp_path / "full")  # full weights, not the named base
    assert loaded.config.num_labels == config.num_labels


def test_attach_to_another_whisper(saved):
    model, features = saved["model"], saved["features"]
    other_dir = saved["root"] / "other_base"
    expected = WhisperForAudioTaggingAndASR.from_whisper(str(other_dir), id2label=LABELS, at_low_dim=32)
    expected.audio_tagging_head.load_state_dict(model.audio_tagging_head.state_dict())
    expected.eval()
    with torch.no_grad():
        expected_tags = expected.tag(features)
        assert not torch.allclose(expected_tags, model.tag(features))  # the Whisper matters
        by_path = WhisperForAudioTaggingAndASR.from_pretrained(saved["root"] / "head", base_model=str(other_dir))
        assert torch.equal(by_path.tag(features), expected_tags)
        assert by_path.config.base_model_name_or_path == str(other_dir)
        instance = tiny_whisper(seed=1)
        by_model = WhisperForAudioTaggingAndASR.from_pretrained(saved["root"] / "head", base_model=instance)
        assert torch.equal(by_model.tag(features), expected_tags)


def test_mismatched_whisper_is_an_error(saved, tmp_path):
    tiny_whisper(d_model=32, encoder_layers=2).save_pretrained(tmp_path / "small")
    with pytest.raises(ValueError, match=r"d_model: head 64 vs Whisper 32; encoder_layers: head 3 vs Whisper 2"):
        WhisperForAudioTaggingAndASR.from_pretrained(saved["root"] / "head", base_model=str(tmp_path / "small"))
    with pytest.raises(ValueError, match=r"encoder_layers: head 3 vs Whisper 4"):
        WhisperForAudioTaggingAndASR.from_pretrained(saved["root"] / "head", base_model=tiny_whisper(encoder_layers=4))


def test_head_only_errors(saved, tmp_path):
    model = saved["model"]
    # no base named
    fresh = WhisperForAudioTaggingAndASR.from_whisper(tiny_whisper())
    assert fresh.config.base_model_name_or_path is None
    with pytest.raises(ValueError, match="must name its base Whisper"):
        fresh.save_pretrained(tmp_path / "nameless", head_only=True)
    # base_model= with a full checkpoint
    model.save_pretrained(tmp_path / "full")
    with pytest.raises(ValueError, match="applies to head-only checkpoints"):
        WhisperForAudioTaggingAndASR.from_pretrained(tmp_path / "full", base_model=str(saved["root"] / "base"))
    # head weights that do not fit the config (4 labels in the config, 3 in the weights)
    bad = tmp_path / "bad"
    model.save_pretrained(bad, head_only=True)
    config = json.loads((bad / "config.json").read_text())
    config["id2label"] = {**config["id2label"], "3": "Cat"}
    config.pop("label2id", None)
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not fit this model's head"):
        WhisperForAudioTaggingAndASR.from_pretrained(bad)
    # a head-only dir that names no base
    config["id2label"] = {str(k): v for k, v in LABELS.items()}
    config["base_model_name_or_path"] = None
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="names no base Whisper"):
        WhisperForAudioTaggingAndASR.from_pretrained(bad)
    assert (
        WhisperForAudioTaggingAndASR.from_pretrained(bad, base_model=str(saved["root"] / "base")).config.num_labels == 3
    )


@pytest.mark.slow
def test_head_only_with_trust_remote_code_without_the_package(saved, tmp_path):
    with torch.no_grad():
        torch.save(saved["model"].tag(saved["features"]), tmp_path / "expected.pt")
    torch.save(saved["features"], tmp_path / "features.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["whisper_at_hf"] = None  # the package is not importable here
        import torch
        from transformers import AutoModelForSpeechSeq2Seq
        model = AutoModelForSpeechSeq2Seq.from_pretrained({str(saved["root"] / "head")!r}, trust_remote_code=True)
        assert type(model).__name__ == "WhisperForAudioTaggingAndASR", type(model)
        assert "whisper_at_hf" not in type(model).__module__
        with torch.no_grad():
            tags = model.tag(torch.load({str(tmp_path / "features.pt")!r}))
        assert torch.equal(tags, torch.load({str(tmp_path / "expected.pt")!r}))
        print("OK")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr[-3000:]


# ---- the processor beside saved checkpoints (issue 22, item 2) ---------------------------------------------------------
@pytest.mark.slow
@pytest.mark.needs_shared
def test_pipeline_opens_saved_full_and_head_only_checkpoints(tmp_path):
    """A full save writes the processor of the Whisper it came from; a head-only checkpoint has none, and the
    pipeline takes its base Whisper's (and says so)."""
    from conftest import SHARED_AUDIO, TINY_EN
    from transformers import pipeline
    from transformers.testing_utils import CaptureLogger

    from whisper_at_hf import head_only

    model = WhisperForAudioTaggingAndASR.from_whisper(str(TINY_EN), id2label=LABELS)
    model.save_pretrained(tmp_path / "full")
    model.save_pretrained(tmp_path / "head", head_only=True)
    assert (tmp_path / "full" / "processor_config.json").is_file()
    assert (tmp_path / "full" / "tokenizer_config.json").is_file()
    assert not (tmp_path / "head" / "tokenizer_config.json").exists()  # head-only stays small
    for folder in ("full", "head"):
        with CaptureLogger(head_only.logger) as captured:
            tagger = pipeline("whisper-at", model=str(tmp_path / folder))
        said = f"{tmp_path / folder} has no processor; using the one of its base Whisper {TINY_EN}"
        assert (said in captured.out) == (folder == "head"), captured.out
        result = tagger(str(SHARED_AUDIO / "speech_en.wav"), top_k=2)
        assert result["text"].strip() and len(result["audio_tags"][0]["tags"]) == 2


def test_pipeline_without_a_known_processor_says_where_it_goes(tmp_path):
    from transformers import pipeline
    from transformers.testing_utils import CaptureLogger

    from whisper_at_hf import saving

    model = WhisperForAudioTaggingAndASR.from_whisper(tiny_whisper(seed=0))  # a model object: no known source
    with CaptureLogger(saving.logger) as captured:
        model.save_pretrained(tmp_path / "full")
    assert f"processor.save_pretrained('{tmp_path / 'full'}')" in captured.out
    with pytest.raises(OSError, match=r"has no processor .*\.save_pretrained\("):
        pipeline("whisper-at", model=str(tmp_path / "full"))
