"""Conversion of original Whisper-AT checkpoints, checked against the original `whisper_at` package.

Original-format files are synthetic: a small random reference `whisper_at` model is saved as an OpenAI-style
`.pt` (`dims` + `model_state_dict`) plus its head as a `.pth` of `at_model.*` keys, or a random 4-layer x 384 head
is paired with the real `../shared/models/whisper-tiny.en`. The converted checkpoint must give the reference
`transcribe(...)['audio_tag']` (fp32, max |Δ| <= 1e-4) and the same tokens and text.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import BASE, REPO_ROOT, SHARED_AUDIO, TINY_EN, tiny_reference_whisper_at
from safetensors import safe_open
from transformers import (
    AutoModelForSpeechSeq2Seq,
    WhisperForConditionalGeneration,
    WhisperProcessor,
)

from whisper_at_hf import WhisperForAudioTaggingAndASR
from whisper_at_hf.convert_original_whisper_at import (
    ORIGINAL_PREFIX,
    convert_whisper_at_checkpoint,
    export_original_checkpoint,
    load_openai_whisper,
    load_original_head,
    main,
    openai_whisper_key_to_hf,
)
from whisper_at_hf.labels import LABEL_NAMES_FILE, LabelNames
from whisper_at_hf.original_format import read_original_label_names
from whisper_at_hf.modeling_whisper_at import HEAD_WEIGHTS_NAME

pytestmark = pytest.mark.needs_shared  # real weights / clips from ../shared

TOLERANCE = 1e-4
SAMPLING_RATE = 16000


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    audio, rate = sf.read(SHARED_AUDIO / "speech_en.wav", dtype="float32")
    assert rate == SAMPLING_RATE and audio.ndim == 1
    return audio


def save_original_files(reference, folder):
    """Writes a reference model as the original release ships it: OpenAI `.pt` + head `.pth`."""
    state = reference.state_dict()
    whisper_state = {key: value for key, value in state.items() if not key.startswith(ORIGINAL_PREFIX)}
    head_state = {key: value for key, value in state.items() if key.startswith(ORIGINAL_PREFIX)}
    whisper_path, head_path = folder / "whisper.pt", folder / "head.pth"
    torch.save({"dims": dataclasses.asdict(reference.dims), "model_state_dict": whisper_state}, whisper_path)
    torch.save(head_state, head_path)
    return whisper_path, head_path


def reference_transcribe(reference, audio, at_time_res):
    """Greedy (temperature 0, no fallback, no timestamps) transcription + tags of the original package."""
    return reference.transcribe(
        torch.from_numpy(audio),
        language="en",
        temperature=0.0,
        condition_on_previous_text=False,
        fp16=False,
        no_speech_threshold=None,
        without_timestamps=True,
        at_time_res=at_time_res,
        suppress_tokens="-1",
        verbose=None,
    )


def converted_run(model, processor, audio, at_time_res, multilingual, max_new_tokens=None):
    """The converted model's settings equivalent to `reference_transcribe`: greedy, no timestamps."""
    features = processor(audio, sampling_rate=SAMPLING_RATE, return_tensors="pt").input_features
    kwargs = {"language": "en", "task": "transcribe"} if multilingual else {}
    if max_new_tokens:
        kwargs["max_new_tokens"] = max_new_tokens
    with torch.no_grad():
        out = model.generate(
            features,
            return_audio_tags=True,
            at_time_res=at_time_res,
            return_timestamps=False,
            do_sample=False,
            num_beams=1,
            **kwargs,
        )
    tokens = out.sequences[0].tolist()
    eos = model.generation_config.eos_token_id
    if eos in tokens:
        tokens = tokens[: tokens.index(eos)]
    text = processor.batch_decode(out.sequences, skip_special_tokens=True)[0]
    return out.audio_tag_logits[0], tokens, text


def reference_tokens(result):
    return [token for segment in result["segments"] for token in segment["tokens"]]


# --------------------------------------------------------------------------------------------------------------------
# Synthetic original checkpoints: OpenAI .pt + head .pth, both head modes
# --------------------------------------------------------------------------------------------------------------------
MODES = {
    # mode: (head low-dim, vocabulary, matching transformers processor, tag resolutions checked)
    "tl_tr": (False, 51864, TINY_EN, (10.0,)),
    "tl_tr_512": (True, 51865, BASE, (2.0,)),  # 4 windows of 2 s on the 7.7 s clip
}


@pytest.fixture(scope="module", params=sorted(MODES))
def original(request, tmp_path_factory, speech):
    low, n_vocab, processor_dir, resolutions = MODES[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    reference = tiny_reference_whisper_at(n_vocab=n_vocab, at_low_compute=low)
    whisper_path, head_path = save_original_files(reference, folder)
    results = {res: reference_transcribe(reference, speech, res) for res in resolutions}
    return dict(
        name=request.param,
        low=low,
        multilingual=n_vocab == 51865,
        processor=processor_dir,
        whisper=whisper_path,
        head=head_path,
        folder=folder,
        reference=reference,
        results=results,
    )


@pytest.mark.slow
def test_openai_checkpoint_conversion_matches_reference(original, speech, tmp_path):
    output = tmp_path / "converted"
    convert_whisper_at_checkpoint(original["whisper"], original["head"], output, processor=original["processor"])

    model = WhisperForAudioTaggingAndASR.from_pretrained(output, dtype=torch.float32)
    processor = WhisperProcessor.from_pretrained(output)
    assert model.config.at_low_dim == (512 if original["low"] else None)
    assert model.config.encoder_layers == 3 and model.config.d_model == 64
    for at_time_res, result in original["results"].items():
        expected_tags = result["audio_tag"]
        tags, tokens, text = converted_run(model, processor, speech, at_time_res, original["multilingual"], 32)
        assert len(expected_tags) == -(-len(speech) // int(at_time_res * SAMPLING_RATE))
        assert (tags[: len(expected_tags)] - expected_tags).abs().max().item() <= TOLERANCE
        assert len(tokens) > 5 and len(set(tokens)) > 1  # a real comparison, not an empty or constant decode
        assert tokens == reference_tokens(result)
        assert text == result["text"]


def test_converted_files(original, tmp_path):
    output = tmp_path / "converted"
    convert_whisper_at_checkpoint(original["whisper"], original["head"], output, processor=original["processor"])
    names = {path.name for path in output.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", LABEL_NAMES_FILE, "README.md"} <= names
    assert {"tokenizer.json", "processor_config.json"} <= names
    assert {"configuration_whisper_at.py", "modeling_whisper_at.py"} <= names  # trust_remote_code
    config = json.loads((output / "config.json").read_text())
    original_names = read_original_label_names()
    assert config["model_type"] == "whisper_at" and config["auto_map"]["AutoModelForSpeechSeq2Seq"]
    assert len(config["id2label"]) == 527
    assert [config["id2label"][str(i)] for i in range(527)] == original_names.get("en")
    assert config["id2label"]["0"] == "Speech"
    labels = LabelNames.load(output / LABEL_NAMES_FILE)
    assert len(labels.languages) > 10 and labels.names_by_language == original_names.names_by_language
    card = (output / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: transformers" in card
    assert "model-index" not in card  # a synthetic head: no published metrics are claimed


@pytest.mark.slow
@pytest.mark.parametrize("original", ["tl_tr"], indirect=True)  # the CLI subprocess runs once, on the TL-TR head
def test_cli_end_to_end(original, tmp_path):
    output = tmp_path / "cli"
    command = [
        sys.executable, "-m", "whisper_at_hf.convert_original_whisper_at",
        "--whisper", str(original["whisper"]), "--processor", str(original["processor"]),
        "--at-checkpoint", str(original["head"]), "--output", str(output), "--dtype", "float16",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "TL-TR head on 3 layers x d_model 64, 527 labels" in done.stdout
    reference_head = {
        key: value for key, value in original["reference"].state_dict().items() if key.startswith(ORIGINAL_PREFIX)
    }
    with safe_open(output / "model.safetensors", "pt") as weights:
        assert weights.get_tensor("audio_tagging_head.time_block.self_attn.q_proj.weight").dtype == torch.float16
        assert torch.equal(
            weights.get_tensor("audio_tagging_head.classifier.weight"),
            reference_head["at_model.mlp_layer.1.weight"].half(),
        )
    config = json.loads((output / "config.json").read_text())
    assert config["dtype"] == "float16" and config["at_low_dim"] is None


def test_head_does_not_fit_whisper(original, capsys):
    # the tiny reference head (width 64, or 512 after projecting from 64) on Whisper tiny.en (d_model 384)
    with pytest.raises(ValueError, match=r"width: head 64 vs Whisper d_model 384"):
        convert_whisper_at_checkpoint(str(TINY_EN), original["head"])
    assert main(["--whisper", str(TINY_EN), "--at-checkpoint", str(original["head"]), "--output", "unused"]) == 1
    assert "whisper-at-convert: error:" in capsys.readouterr().err
    assert main(["--whisper", str(TINY_EN), "--at-checkpoint", "missing.pth", "--output", "unused"]) == 1
    assert "missing.pth not found" in capsys.readouterr().err


def test_processor_must_match_the_vocabulary(original, tmp_path):
    wrong = BASE if original["processor"] == TINY_EN else TINY_EN
    with pytest.raises(ValueError, match="different vocabularies"):
        convert_whisper_at_checkpoint(original["whisper"], original["head"], tmp_path / "out", processor=wrong)
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())  # validated before writing anything
    with pytest.raises(ValueError, match="OpenAI checkpoint: pass processor"):
        convert_whisper_at_checkpoint(original["whisper"], original["head"], tmp_path / "out")


def test_bad_head_files_fail_clearly(original, tmp_path):
    data = original["head"].read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint at all" * 10)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_original_head(truncated)
    with pytest.raises(ValueError, match="truncated|corrupt"):
        load_original_head(garbage)
    with pytest.raises(ValueError, match="empty"):
        load_original_head(empty)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_original_head(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        convert_whisper_at_checkpoint(original["whisper"], truncated, processor=original["processor"])

    # a pickle of arbitrary objects is refused, never executed
    evil = tmp_path / "evil.pth"
    torch.save({"at_model.mlp_layer.1.weight": argparse.Namespace(payload="would run on load")}, evil)
    with pytest.raises(ValueError, match="never unpickled"):
        load_original_head(evil)
    # a readable state dict that is no head
    not_head = tmp_path / "whisper_only.pth"
    torch.save({"encoder.conv1.weight": torch.zeros(2, 2)}, not_head)
    with pytest.raises(ValueError, match="no Whisper-AT TL-TR head"):
        load_original_head(not_head)


# --------------------------------------------------------------------------------------------------------------------
# Real Whisper tiny.en (transformers dir) with a synthetic 4-layer x 384 head
# --------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_en_original(tmp_path_factory, speech):
    """A reference `whisper_at` model holding the real tiny.en weights and a random head; its head as `.pth`."""
    from whisper_at.model import ModelDimensions, Whisper

    hf_config = WhisperForConditionalGeneration.config_class.from_pretrained(TINY_EN)
    dims = ModelDimensions(
        n_mels=hf_config.num_mel_bins, n_audio_ctx=hf_config.max_source_positions, n_audio_state=hf_config.d_model,
        n_audio_head=hf_config.encoder_attention_heads, n_audio_layer=hf_config.encoder_layers,
        n_vocab=hf_config.vocab_size, n_text_ctx=hf_config.max_target_positions, n_text_state=hf_config.d_model,
        n_text_head=hf_config.decoder_attention_heads, n_text_layer=hf_config.decoder_layers,
    )  # fmt: skip
    torch.manual_seed(3)
    reference = Whisper(dims).eval()
    hf_state = WhisperForConditionalGeneration.from_pretrained(TINY_EN, dtype=torch.float32).state_dict()
    # the package's OpenAI -> transformers key map, inverted over every Whisper weight of the reference
    openai_state = {
        key: hf_state[openai_whisper_key_to_hf(key)]
        for key in reference.state_dict()
        if not key.startswith(ORIGINAL_PREFIX)
    }
    missing, unexpected = reference.load_state_dict(openai_state, strict=False)
    assert not unexpected and all(key.startswith(ORIGINAL_PREFIX) for key in missing)
    folder = tmp_path_factory.mktemp("tiny_en")
    whisper_path, head_path = save_original_files(reference, folder)
    result = reference_transcribe(reference, speech, 10.0)
    return dict(reference=reference, whisper=whisper_path, head=head_path, result=result, hf_state=hf_state)


@pytest.fixture(scope="module")
def tiny_en_converted(tiny_en_original, tmp_path_factory):
    output = tmp_path_factory.mktemp("tiny_en_converted") / "whisper-at-tiny.en-synthetic"
    convert_whisper_at_checkpoint(str(TINY_EN), tiny_en_original["head"], output)
    return output


def test_transformers_whisper_dir_matches_reference(tiny_en_original, tiny_en_converted, speech):
    model = WhisperForAudioTaggingAndASR.from_pretrained(tiny_en_converted, dtype=torch.float32)
    processor = WhisperProcessor.from_pretrained(tiny_en_converted)
    assert (model.config.encoder_layers, model.config.d_model, model.config.at_low_dim) == (4, 384, None)
    result = tiny_en_original["result"]
    tags, tokens, text = converted_run(model, processor, speech, 10.0, multilingual=False)
    assert (tags[:1] - result["audio_tag"]).abs().max().item() <= TOLERANCE
    assert tokens == reference_tokens(tiny_en_original["result"])
    assert text == result["text"]
    assert "background noise" in text  # real weights, real speech
    assert model.config.base_model_name_or_path == str(TINY_EN.resolve())


def test_openai_whisper_round_trip(tiny_en_original):
    """tiny.en -> OpenAI names -> `.pt` -> load_openai_whisper gives back every transformers weight."""
    model = load_openai_whisper(tiny_en_original["whisper"])
    state = model.state_dict()
    assert set(state) == set(tiny_en_original["hf_state"])
    for key, value in tiny_en_original["hf_state"].items():
        assert torch.equal(state[key], value), key
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    assert model.config.decoder_start_token_id == 50257 and model.config.eos_token_id == 50256


def test_export_gives_back_the_original_files(original, tmp_path):
    """original files -> converter -> export_original_checkpoint: the same dims and tensors, loadable by the
    original package (strict), in both head modes."""
    from whisper_at.model import ModelDimensions, Whisper

    model = convert_whisper_at_checkpoint(original["whisper"], original["head"], processor=original["processor"])
    whisper_checkpoint, head_state = export_original_checkpoint(model)
    saved_whisper = torch.load(original["whisper"], weights_only=True)
    saved_head = torch.load(original["head"], weights_only=True)
    assert whisper_checkpoint["dims"] == saved_whisper["dims"]
    for exported, saved in ((whisper_checkpoint["model_state_dict"], saved_whisper["model_state_dict"]),
                            (head_state, saved_head)):  # fmt: skip
        assert exported.keys() == saved.keys()
        for key, value in saved.items():
            assert torch.equal(exported[key], value.to(exported[key].dtype)), key
    rebuilt = Whisper(ModelDimensions(**whisper_checkpoint["dims"]), at_low_compute=original["low"])
    rebuilt.load_state_dict({**whisper_checkpoint["model_state_dict"], **head_state})  # strict


def test_head_only_conversion(tiny_en_original, tiny_en_converted, tmp_path, speech):
    head_dir = tmp_path / "head"
    convert_whisper_at_checkpoint(str(TINY_EN), tiny_en_original["head"], head_dir, head_only=True)
    names = {path.name for path in head_dir.iterdir()}
    assert HEAD_WEIGHTS_NAME in names and "model.safetensors" not in names
    assert {LABEL_NAMES_FILE, "README.md", "tokenizer.json", "modeling_whisper_at.py"} <= names
    head_bytes = (head_dir / HEAD_WEIGHTS_NAME).stat().st_size
    assert head_bytes < (tiny_en_converted / "model.safetensors").stat().st_size / 5
    config = json.loads((head_dir / "config.json").read_text())
    assert config["base_model_name_or_path"] == str(TINY_EN.resolve())
    assert "head only" in (head_dir / "README.md").read_text()

    full = WhisperForAudioTaggingAndASR.from_pretrained(tiny_en_converted, dtype=torch.float32)
    features = WhisperProcessor.from_pretrained(head_dir)(
        speech, sampling_rate=SAMPLING_RATE, return_tensors="pt"
    ).input_features
    for loader in (WhisperForAudioTaggingAndASR, AutoModelForSpeechSeq2Seq):
        attached = loader.from_pretrained(head_dir, dtype=torch.float32)
        assert isinstance(attached, WhisperForAudioTaggingAndASR)
        with torch.no_grad():
            assert torch.equal(attached.tag(features), full.tag(features))
    assert attached.generation_config.no_timestamps_token_id == full.generation_config.no_timestamps_token_id


def test_head_only_from_openai_checkpoint_needs_a_base_name(original, tmp_path):
    with pytest.raises(ValueError, match="must name its base Whisper"):
        convert_whisper_at_checkpoint(
            original["whisper"], original["head"], tmp_path / "h", head_only=True, processor=original["processor"]
        )


@pytest.mark.parametrize("original", ["tl_tr"], indirect=True)
def test_output_is_validated_first_staged_and_never_overwritten_silently(original, tmp_path, capsys):
    """Issue 21: a bad --variant writes nothing; a non-empty --output needs --overwrite; the checkpoint is written
    into a folder beside the output and moved into place (no temporary folder is left)."""
    output = tmp_path / "out"
    argv = ["--whisper", str(original["whisper"]), "--processor", str(original["processor"]),
            "--at-checkpoint", str(original["head"]), "--output", str(output)]  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--variant", "larg-v2"])
    assert exited.value.code == 2 and "--variant: 'larg-v2' is not a released Whisper-AT variant (did you mean 'large-v2'?)" in capsys.readouterr().err
    assert not output.exists()
    with pytest.raises(ValueError, match="is not one of"):  # the library: refused before writing too
        convert_whisper_at_checkpoint(original["whisper"], original["head"], output, processor=original["processor"],
                                      variant="larg-v2")
    assert not output.exists() and list(tmp_path.iterdir()) == []

    output.mkdir()
    (output / "README.md").write_text("my own notes")
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2 and "is not empty: pass --overwrite" in capsys.readouterr().err
    with pytest.raises(FileExistsError, match="is not empty"):
        convert_whisper_at_checkpoint(original["whisper"], original["head"], output, processor=original["processor"])
    assert (output / "README.md").read_text() == "my own notes" and len(list(output.iterdir())) == 1

    assert main([*argv, "--overwrite"]) == 0
    assert (output / "README.md").read_text().startswith("---\n") and (output / "model.safetensors").is_file()
    assert [path.name for path in tmp_path.iterdir()] == ["out"]  # the staging and retired folders are gone
    assert (output.stat().st_mode & 0o777) == (0o777 & ~_umask())


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_version_of_the_converter(capsys):
    from whisper_at_hf import __version__

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.strip() == f"whisper-at-convert {__version__}"
