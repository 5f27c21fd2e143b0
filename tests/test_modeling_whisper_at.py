"""WhisperForAudioTaggingAndASR: exact tags vs the reference package, untouched ASR, one encoder pass."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import BASE, SHARED_AUDIO, TINY_EN, assert_close_to_scale, fp32_stack_rel, tiny_whisper
from transformers import AutoModelForSpeechSeq2Seq, WhisperForConditionalGeneration, WhisperProcessor

from whisper_at_hf import WhisperATConfig, WhisperATHead, WhisperForAudioTaggingAndASR
from whisper_at_hf.convert_original_whisper_at import convert_original_head_state_dict, original_head_key_to_hf

pytestmark = pytest.mark.needs_shared  # real weights / clips from ../shared

whisper_at_model = pytest.importorskip("whisper_at.model", reason="reference package whisper-at==0.5 (test extra)")


# --------------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------------
def count_encoder_passes(model: WhisperForConditionalGeneration) -> list[int]:
    """A counter bumped each time the encoder's first layer runs (= one encoder pass)."""
    calls = [0]
    model.model.encoder.layers[0].register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def features_of(processor: WhisperProcessor, *names: str) -> torch.Tensor:
    arrays = [sf.read(SHARED_AUDIO / name, dtype="float32")[0] for name in names]
    return processor(arrays, sampling_rate=16000, return_tensors="pt").input_features


def randomize_(module: torch.nn.Module, seed: int, std: float = 0.2) -> None:
    """Random values for every parameter, LayerNorms included, so a wrong mapping cannot hide behind ones/zeros."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * std)


def reference_encoder_from(model: WhisperForConditionalGeneration):
    """The reference package's AudioEncoder (which pools per layer) holding `model`'s encoder weights."""
    config, encoder = model.config, model.model.encoder
    reference = whisper_at_model.AudioEncoder(
        config.num_mel_bins, config.max_source_positions, config.d_model, config.encoder_attention_heads,
        config.encoder_layers,
    )
    names = {"attn.query": "self_attn.q_proj", "attn.key": "self_attn.k_proj", "attn.value": "self_attn.v_proj",
             "attn.out": "self_attn.out_proj", "attn_ln": "self_attn_layer_norm", "mlp.0": "fc1", "mlp.2": "fc2",
             "mlp_ln": "final_layer_norm"}
    ours = encoder.state_dict()
    state = {"positional_embedding": ours["embed_positions.weight"]}
    for key in reference.state_dict():
        if key.startswith("blocks."):
            _, index, rest = key.split(".", 2)
            module, param = rest.rsplit(".", 1)
            state[key] = ours[f"layers.{index}.{names[module]}.{param}"]
        elif key.startswith(("conv1", "conv2")):
            state[key] = ours[key]
        elif key.startswith("ln_post"):
            state[key] = ours[key.replace("ln_post", "layer_norm")]
    reference.load_state_dict(state)
    return reference.eval()


def reference_head_and_ours(config: WhisperATConfig, seed: int):
    """A random reference ATModel and our head holding the same weights (converted by the package's mapping)."""
    mode = "tl_down_tr_512_1_8" if config.at_low_dim else "tl_tr_1_8"
    reference = whisper_at_model.ATModel(label_dim=527, n_layer=config.encoder_layers, rep_dim=config.d_model, mode=mode)
    randomize_(reference, seed)
    head_state, settings = convert_original_head_state_dict({f"at_model.{k}": v for k, v in reference.state_dict().items()})
    assert settings == {"d_model": config.d_model, "at_low_dim": config.at_low_dim, "num_labels": 527}
    return reference.eval(), head_state


@pytest.fixture(scope="module")
def tiny_en():
    processor = WhisperProcessor.from_pretrained(TINY_EN)
    plain = WhisperForConditionalGeneration.from_pretrained(TINY_EN, dtype=torch.float32).eval()
    joint = WhisperForAudioTaggingAndASR.from_whisper(plain).eval()
    return processor, plain, joint


@pytest.fixture(scope="module")
def tiny_pair():
    """A tiny random plain Whisper and the joint model on the same weights (random head)."""
    plain = tiny_whisper(seed=0)
    torch.manual_seed(1)
    joint = WhisperForAudioTaggingAndASR.from_whisper(plain).eval()
    return plain, joint


# --------------------------------------------------------------------------------------------------------------------
# Tags equal the reference package's
# --------------------------------------------------------------------------------------------------------------------
def test_head_key_mapping_covers_the_original_names():
    assert original_head_key_to_hf("at_model.time_tr.attn.query.weight") == "time_block.self_attn.q_proj.weight"
    assert original_head_key_to_hf("at_model.layer_tr.mlp.2.bias") == "layer_block.fc2.bias"
    assert original_head_key_to_hf("at_model.down_layer.1.weight") == "input_proj.weight"
    assert original_head_key_to_hf("mlp_layer.0.bias") == "classifier_norm.bias"
    with pytest.raises(KeyError):
        original_head_key_to_hf("at_model.time_tr.attn.key.bias_extra")
    with pytest.raises(ValueError, match="no Whisper-AT TL-TR head"):
        convert_original_head_state_dict({"encoder.conv1.weight": torch.zeros(1)})


@pytest.mark.parametrize("at_low_dim", [None, 512], ids=["tl_tr", "tl_tr_512"])
@pytest.mark.parametrize("size", ["d64_L3_random", "d384_L4_tiny.en"])
def test_tags_equal_reference_package(size, at_low_dim, tiny_en):
    """Encoder pooled states and TL-TR logits equal the reference encoder + ATModel on the same weights."""
    if size == "d64_L3_random":
        processor, whisper = tiny_en[0], tiny_whisper(seed=3, d_model=64, encoder_layers=3, encoder_ffn_dim=256)
        randomize_(whisper.model.encoder, seed=4, std=0.05)
    else:
        processor, whisper = tiny_en[0], tiny_en[1]
    config = WhisperATConfig.from_whisper_config(whisper.config, at_low_dim=at_low_dim)
    reference_head, head_state = reference_head_and_ours(config, seed=5)
    model = WhisperForAudioTaggingAndASR.from_whisper(whisper, at_low_dim=at_low_dim).eval()
    model.audio_tagging_head.load_state_dict(head_state)
    reference_encoder = reference_encoder_from(whisper)

    features = features_of(processor, "speech_en_music.wav")
    with torch.no_grad():
        reference_last, reference_pooled = reference_encoder(features)
        encoded = model.encode(features)
        # states reach |x| ~ 500: compared relative to their magnitude and to fp32 rounding over the layer stack
        # (logits below keep the absolute 1e-4)
        rel = fp32_stack_rel(whisper.config.encoder_layers, whisper.config.encoder_ffn_dim)
        assert_close_to_scale(encoded.pooled_hidden_states[0], reference_pooled, rel=rel, msg="pooled states")
        assert_close_to_scale(encoded.last_hidden_state, reference_last, rel=rel, msg="last hidden state")
        worst = 0.0
        for at_time_res in (0.4, 2, 10, 30):
            expected = reference_head(reference_pooled, time_resolution=at_time_res)
            ours = model.tag(features, at_time_res=at_time_res)[0]
            assert ours.shape == expected.shape == (75 // round(at_time_res / 0.4), 527)
            worst = max(worst, (ours - expected).abs().max().item())
    print(f"max |delta| vs reference ({size}, low={at_low_dim}): {worst:.2e}")
    assert worst <= 1e-4


# --------------------------------------------------------------------------------------------------------------------
# ASR untouched, one encoder pass
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_beams", [1, 3])
def test_generate_tokens_equal_plain_whisper_batch_of_3(tiny_pair, num_beams):
    plain, joint = tiny_pair
    features = torch.randn(3, 80, 3000, generator=torch.Generator().manual_seed(7))
    kwargs = dict(max_new_tokens=12, num_beams=num_beams, do_sample=False)
    with torch.no_grad():
        expected = plain.generate(features, **kwargs)
        untagged = joint.generate(features, **kwargs)
        tagged = joint.generate(features, return_audio_tags=True, **kwargs)
    assert torch.equal(untagged, expected)
    assert torch.equal(tagged.sequences, expected)
    assert tagged.audio_tag_logits.shape == (3, 3, 527)


def test_real_tiny_en_transcript_and_one_encoder_pass(tiny_en):
    processor, plain, joint = tiny_en
    features = features_of(processor, "speech_en.wav")
    passes = count_encoder_passes(joint)
    with torch.no_grad():
        expected = plain.generate(features)
        out = joint.generate(features, return_audio_tags=True)
    assert passes[0] == 1
    assert torch.equal(out.sequences, expected)
    text = processor.batch_decode(out.sequences, skip_special_tokens=True)[0]
    assert "Whisper can recognize" in text and "background noise" in text
    with torch.no_grad():
        np.testing.assert_allclose(out.audio_tag_logits, joint.tag(features), atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def base_pair():
    processor = WhisperProcessor.from_pretrained(BASE)
    plain = WhisperForConditionalGeneration.from_pretrained(BASE, dtype=torch.float32).eval()
    joint = WhisperForAudioTaggingAndASR.from_whisper(plain).eval()
    return processor, plain, joint


@pytest.mark.slow
@pytest.mark.parametrize("language", [None, "de"])
def test_one_encoder_pass_with_language_detection(base_pair, language):
    processor, plain, joint = base_pair
    features = features_of(processor, "speech_de.wav")
    passes = count_encoder_passes(joint)
    with torch.no_grad():
        out = joint.generate(features, return_audio_tags=True, language=language, max_new_tokens=30)
        expected = plain.generate(features, language=language, max_new_tokens=30)
    assert passes[0] == 1, f"{passes[0]} encoder passes for one 30 s window"
    assert torch.equal(out.sequences, expected)
    # detection really ran (and found German): the transcript is German, not an English translation
    assert "Guten Morgen" in processor.batch_decode(out.sequences, skip_special_tokens=True)[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    "kwargs",
    [
        {"task": "translate", "language": "de"},
        {"return_timestamps": True},
        {"prompt": "Guten Morgen, Wetter."},
        {"language": "fr"},
    ],
    ids=["translate", "timestamps", "prompt_ids", "language"],
)
def test_whisper_generate_options_behave_as_plain_whisper(base_pair, kwargs):
    processor, plain, joint = base_pair
    kwargs = dict(kwargs, max_new_tokens=20)
    if "prompt" in kwargs:
        kwargs["prompt_ids"] = processor.get_prompt_ids(kwargs.pop("prompt"), return_tensors="pt")
    features = features_of(processor, "speech_de.wav")
    with torch.no_grad():
        expected = plain.generate(features, **kwargs)
        assert torch.equal(joint.generate(features, return_audio_tags=True, **kwargs).sequences, expected)


def test_generate_reuses_given_encoder_outputs(tiny_pair):
    plain, joint = tiny_pair
    features = torch.randn(2, 80, 3000, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        encoded = joint.encode(features)
        passes = count_encoder_passes(joint)
        out = joint.generate(encoder_outputs=encoded, return_audio_tags=True, max_new_tokens=8)
        assert passes[0] == 0
        assert torch.equal(out.sequences, plain.generate(features, max_new_tokens=8))
        torch.testing.assert_close(out.audio_tag_logits, joint.tag_pooled(encoded.pooled_hidden_states))


def test_batch_equals_singles(tiny_pair):
    _, joint = tiny_pair
    features = torch.randn(4, 80, 3000, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        batch = joint.generate(features, return_audio_tags=True, max_new_tokens=10)
        for index in range(4):
            single = joint.generate(features[index : index + 1], return_audio_tags=True, max_new_tokens=10)
            length = single.sequences.shape[1]
            assert torch.equal(batch.sequences[index, :length], single.sequences[0])
            torch.testing.assert_close(batch.audio_tag_logits[index], single.audio_tag_logits[0], atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------------------------------
# Long inputs and the tag grid
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("at_time_res", [4.0, 10.0])
def test_long_input_is_tagged_on_the_absolute_grid_streaming(tiny_pair, at_time_res):
    """89 s = 8900 frames: windows on the absolute grid, identical to tagging the whole pooled timeline at once."""
    _, joint = tiny_pair
    features = torch.randn(1, 80, 8900, generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        streamed = joint.tag(features, at_time_res=at_time_res)
        padded = torch.nn.functional.pad(features, (0, 9000 - 8900))
        timeline = torch.cat([joint.encode(padded[..., s : s + 3000]).pooled_hidden_states for s in (0, 3000, 6000)], 2)
        whole = joint.tag_pooled(timeline, at_time_res=at_time_res)
    num_windows = -(-89 // int(at_time_res))
    assert streamed.shape == (1, num_windows, 527)
    torch.testing.assert_close(streamed, whole[:, :num_windows], atol=1e-5, rtol=0)


def test_long_batch_is_tagged_as_its_items(tiny_pair):
    _, joint = tiny_pair
    features = torch.randn(2, 80, 6500, generator=torch.Generator().manual_seed(25))
    with torch.no_grad():
        batch = joint.tag(features, at_time_res=4.0)
        singles = torch.cat([joint.tag(features[index : index + 1], at_time_res=4.0) for index in range(2)])
        shorter = joint.tag(features, at_time_res=4.0, num_frames=3100)
    assert batch.shape == (2, 17, 527) and shorter.shape == (2, 8, 527)
    torch.testing.assert_close(batch, singles, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shorter[:, :7], batch[:, :7], atol=1e-5, rtol=1e-5)


def test_invalid_time_resolution_raises(tiny_pair):
    _, joint = tiny_pair
    with pytest.raises(ValueError, match="multiple of 0.4"):
        joint.tag(torch.zeros(1, 80, 3000), at_time_res=0.3)
    with pytest.raises(ValueError, match="multiple of 0.4"):
        joint.generate(torch.zeros(1, 80, 3000), return_audio_tags=True, at_time_res=-10)


def test_head_rejects_states_of_another_shape():
    config = WhisperATConfig.from_whisper_config(tiny_whisper().config)
    with pytest.raises(ValueError, match="expects 3 x 64"):
        WhisperATHead(config)(torch.zeros(1, 4, 75, 64))


# --------------------------------------------------------------------------------------------------------------------
# Forward, loss, freezing, dtypes
# --------------------------------------------------------------------------------------------------------------------
def test_forward_returns_seq2seq_output_plus_tags_and_loss(tiny_pair):
    plain, joint = tiny_pair
    features = torch.randn(2, 80, 3000, generator=torch.Generator().manual_seed(11))
    labels = torch.tensor([[100, 5, 6, 101], [100, 7, 8, 101]])
    audio_labels = torch.zeros(2, 1, 527)
    audio_labels[:, 0, 3] = 1
    out = joint(features, labels=labels, audio_labels=audio_labels)
    expected = plain(features, labels=labels)
    torch.testing.assert_close(out.logits, expected.logits)
    torch.testing.assert_close(out.lm_loss, expected.loss)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(out.audio_tag_logits[:, :1], audio_labels)
    torch.testing.assert_close(out.audio_tag_loss, bce)
    torch.testing.assert_close(out.loss, expected.loss + bce)
    tag_only = joint(features, audio_labels=audio_labels[:, 0])
    assert tag_only.logits is None and tag_only.encoder_last_hidden_state is None
    torch.testing.assert_close(tag_only.loss, bce)
    with pytest.raises(ValueError, match="do not fit"):
        joint(features, audio_labels=torch.zeros(2, 4, 527))


def test_whisper_is_frozen_and_only_the_head_gets_gradients(tiny_pair):
    _, joint = tiny_pair
    trainable = {name for name, param in joint.named_parameters() if param.requires_grad}
    assert trainable and all(name.startswith("audio_tagging_head.") for name in trainable)
    assert "trainable params" in joint.num_parameters_summary()
    joint.zero_grad()
    loss = joint(torch.randn(1, 80, 3000), audio_labels=torch.ones(1, 527)).loss
    loss.backward()
    grads = {name for name, param in joint.named_parameters() if param.grad is not None}
    assert grads == trainable
    joint.zero_grad()
    joint.unfreeze_whisper()
    assert all(param.requires_grad for param in joint.parameters())
    joint.freeze_whisper()


def test_grad_modes_leave_no_capture_behind(tiny_pair):
    plain, joint = tiny_pair
    features = torch.randn(1, 80, 3000)
    with torch.inference_mode():
        first = joint.tag(features)
    with torch.no_grad():
        torch.testing.assert_close(joint.tag(features), first)
        # plain encoder use (as in ASR) is untouched by the hooks
        torch.testing.assert_close(
            joint.model.encoder(features).last_hidden_state, plain.model.encoder(features).last_hidden_state
        )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_runs_and_stays_close(dtype):
    torch.manual_seed(12)
    joint = WhisperForAudioTaggingAndASR.from_whisper(tiny_whisper(seed=12)).eval()
    features = torch.randn(2, 80, 3000, generator=torch.Generator().manual_seed(13))
    with torch.no_grad():
        reference = joint.tag(features).sigmoid()
        joint.to(dtype)
        out = joint.generate(features.to(dtype), return_audio_tags=True, max_new_tokens=5)
    assert out.audio_tag_logits.dtype == dtype and torch.isfinite(out.audio_tag_logits).all()
    assert (out.audio_tag_logits.float().sigmoid() - reference).abs().max() < 0.05


# --------------------------------------------------------------------------------------------------------------------
# Saving and loading
# --------------------------------------------------------------------------------------------------------------------
def test_save_load_round_trip_and_auto_class(tmp_path, tiny_pair):
    _, joint = tiny_pair
    joint.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "whisper_at"
    assert config["auto_map"]["AutoModelForSpeechSeq2Seq"].endswith("WhisperForAudioTaggingAndASR")
    assert (tmp_path / "modeling_whisper_at.py").is_file()
    # the pipeline's code and entry are written into the checkpoint, not into the model's config
    assert "whisper-at-remote-code" in config["custom_pipelines"] and (tmp_path / "pipeline_whisper_at.py").is_file()
    assert not hasattr(joint.config, "custom_pipelines")
    features = torch.randn(1, 80, 3000)
    for loaded in (
        WhisperForAudioTaggingAndASR.from_pretrained(tmp_path),
        AutoModelForSpeechSeq2Seq.from_pretrained(tmp_path),
    ):
        assert type(loaded) is WhisperForAudioTaggingAndASR
        assert not any(p.requires_grad for n, p in loaded.named_parameters() if not n.startswith("audio_tagging_head."))
        with torch.no_grad():
            torch.testing.assert_close(loaded.eval().tag(features), joint.tag(features))


def test_plain_whisper_dir_is_an_error_not_a_headless_model(tmp_path, tiny_pair):
    plain, _ = tiny_pair
    plain.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="does not hold a matching Whisper-AT head"):
        WhisperForAudioTaggingAndASR.from_pretrained(tmp_path)


def test_mismatched_head_is_an_error(tmp_path, tiny_pair):
    _, joint = tiny_pair
    joint.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["at_low_dim"] = 512
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="Whisper-AT head"):
        WhisperForAudioTaggingAndASR.from_pretrained(tmp_path)


FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    sys.modules["whisper_at_hf"] = None  # the package must not be importable here
    import torch
    from transformers import AutoModelForSpeechSeq2Seq
    path, trust = sys.argv[1], sys.argv[2] == "1"
    try:
        model = AutoModelForSpeechSeq2Seq.from_pretrained(path, trust_remote_code=trust)
    except Exception as error:
        print("ERROR", type(error).__name__, error)
        raise SystemExit(3)
    torch.manual_seed(0)
    features = torch.randn(1, 80, 3000)
    with torch.no_grad():
        logits = model.eval().tag(features)
    print("CLASS", type(model).__name__)
    torch.save(logits, path + "/fresh_logits.pt")
    """
)


@pytest.mark.slow
def test_fresh_process_without_the_package(tmp_path, tiny_pair):
    _, joint = tiny_pair
    joint.save_pretrained(tmp_path)
    script = tmp_path / "fresh.py"
    script.write_text(FRESH_PROCESS)
    run = subprocess.run([sys.executable, script, tmp_path, "1"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "CLASS WhisperForAudioTaggingAndASR" in run.stdout
    torch.manual_seed(0)
    with torch.no_grad():
        expected = joint.tag(torch.randn(1, 80, 3000))
    torch.testing.assert_close(torch.load(tmp_path / "fresh_logits.pt"), expected)
    # without trust_remote_code it fails loudly instead of giving a plain Whisper without the head
    run = subprocess.run([sys.executable, script, tmp_path, "0"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 3 and "ERROR" in run.stdout, run.stdout + run.stderr


# --------------------------------------------------------------------------------------------------------------------
# One model, many callers: no patching, no state between calls, hooks of others left alone
# --------------------------------------------------------------------------------------------------------------------
def instance_state(model: torch.nn.Module) -> dict[str, set[str]]:
    """The instance attributes of the model and every submodule (what a call could leave behind)."""
    return {name: set(vars(module)) for name, module in model.named_modules()}


def test_no_forward_patching_and_no_state_left_on_the_model(tiny_pair):
    import re

    from conftest import REPO_ROOT

    for path in (REPO_ROOT / "src" / "whisper_at_hf").rglob("*.py"):
        source = path.read_text()
        assert not re.search(r"\.forward\s*=[^=]|del\s+\S+\.forward\b", source), f"{path.name} assigns a forward"
    _, joint = tiny_pair
    before = instance_state(joint)
    encoder_forward = joint.model.encoder.forward
    with torch.no_grad():
        joint.generate(torch.randn(2, 80, 3000), return_audio_tags=True, max_new_tokens=4)
        joint.tag(torch.randn(1, 80, 4000))
    assert instance_state(joint) == before
    assert joint.model.encoder.forward == encoder_forward and "forward" not in vars(joint.model.encoder)


def test_generate_adds_no_python_work_per_step_or_per_label(tiny_pair, monkeypatch):
    """The tags' cost next to ASR is the head's FLOPs and nothing else (benchmarks/overhead.py measures it). Two
    hidden costs this guards against: transformers inspects `forward`'s signature on every decoding step for classes
    registered with `register_for_auto_class` (remote code), and deep-copies the config on every `generate` call,
    where 527 tag classes made the copy ~6x Whisper's."""
    import copy
    import inspect

    calls = {"signature": 0, "deepcopy": 0}
    signature, deepcopy = inspect.signature, copy.deepcopy

    def counting_signature(*args, **kwargs):
        calls["signature"] += 1
        return signature(*args, **kwargs)

    def counting_deepcopy(*args, **kwargs):
        calls["deepcopy"] += 1
        return deepcopy(*args, **kwargs)

    monkeypatch.setattr(inspect, "signature", counting_signature)
    monkeypatch.setattr(copy, "deepcopy", counting_deepcopy)
    plain, joint = tiny_pair
    many_labels = WhisperForAudioTaggingAndASR.from_whisper(plain, num_labels=527).eval()
    few_labels = WhisperForAudioTaggingAndASR.from_whisper(plain, num_labels=3).eval()
    features = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(3))

    def counted(model, tokens):
        calls.update(signature=0, deepcopy=0)
        with torch.no_grad():
            model.generate(features, max_new_tokens=tokens, min_new_tokens=tokens)
        return dict(calls)

    assert not WhisperForAudioTaggingAndASR.is_remote_code()
    for tokens in (2, 12):  # (transformers' own logits processors inspect signatures per step, for both models)
        assert counted(many_labels, tokens)["signature"] == counted(plain, tokens)["signature"]
    assert counted(many_labels, 4)["deepcopy"] == counted(few_labels, 4)["deepcopy"]  # nothing per label


def test_threads_sharing_one_model_give_the_sequential_results(tiny_pair):
    from concurrent.futures import ThreadPoolExecutor

    _, joint = tiny_pair
    generator = torch.Generator().manual_seed(21)
    inputs = [torch.randn(batch, 80, 3000, generator=generator) for batch in (1, 2, 1, 3)]
    passes = count_encoder_passes(joint)

    def run(features: torch.Tensor):
        with torch.no_grad():
            out = joint.generate(features, return_audio_tags=True, max_new_tokens=6)
        return out.sequences, out.audio_tag_logits

    expected = [run(features) for features in inputs]
    assert passes[0] == len(inputs)  # one pass per call, sequentially
    for _ in range(3):  # several trials: interleavings differ
        with ThreadPoolExecutor(max_workers=len(inputs)) as pool:
            results = list(pool.map(run, inputs))
        for (sequences, tags), (want_sequences, want_tags) in zip(results, expected):
            assert torch.equal(sequences, want_sequences)
            torch.testing.assert_close(tags, want_tags, atol=1e-5, rtol=1e-5)


def test_accelerate_hooks_stay_attached_after_a_joint_generate(tiny_pair, tmp_path):
    from accelerate.hooks import AlignDevicesHook, add_hook_to_module, remove_hook_from_module

    _, joint = tiny_pair
    features = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(22))
    with torch.no_grad():
        expected = joint.generate(features, return_audio_tags=True, max_new_tokens=5)
    encoder = joint.model.encoder
    add_hook_to_module(encoder, AlignDevicesHook(execution_device="cpu", io_same_device=True))
    hooked_forward = encoder.forward
    try:
        with torch.no_grad():
            out = joint.generate(features, return_audio_tags=True, max_new_tokens=5)
        assert hasattr(encoder, "_hf_hook") and encoder.forward is hooked_forward
        assert torch.equal(out.sequences, expected.sequences)
        torch.testing.assert_close(out.audio_tag_logits, expected.audio_tag_logits)
    finally:
        remove_hook_from_module(encoder)
    # a model dispatched by Accelerate with a device map (as `from_pretrained(device_map=...)` does on several
    # devices): every mapped module is hooked, and generate keeps using the hooked encoder
    from accelerate import dispatch_model

    joint.save_pretrained(tmp_path)
    loaded = WhisperForAudioTaggingAndASR.from_pretrained(tmp_path).eval()
    device_map = {"model.encoder": "cpu", "model.decoder": "cpu", "proj_out": "cpu", "audio_tagging_head": "cpu"}
    loaded = dispatch_model(loaded, device_map=device_map, force_hooks=True)
    encoder = loaded.model.encoder
    hooked_forward = encoder.forward
    assert hasattr(encoder, "_hf_hook") and hasattr(loaded, "hf_device_map")
    passes = count_encoder_passes(loaded)
    with torch.no_grad():
        for _ in range(2):
            out = loaded.generate(features, return_audio_tags=True, max_new_tokens=5)
    assert passes[0] == 2  # still one encoder pass per call
    assert hasattr(encoder, "_hf_hook") and encoder.forward is hooked_forward
    assert torch.equal(out.sequences, expected.sequences)
    torch.testing.assert_close(out.audio_tag_logits, expected.audio_tag_logits)


@pytest.mark.parametrize("num_beams", [1, 2])
def test_generate_dict_output_exposes_whisper_fields(tiny_pair, num_beams):
    plain, joint = tiny_pair
    features = torch.randn(2, 80, 3000, generator=torch.Generator().manual_seed(23))
    kwargs = dict(max_new_tokens=5, num_beams=num_beams, return_dict_in_generate=True, output_scores=True)
    with torch.no_grad():
        expected = plain.generate(features, **kwargs)
        out = joint.generate(features, return_audio_tags=True, **kwargs)
    assert torch.equal(out.sequences, expected.sequences)
    assert len(out.scores) == len(expected.scores)
    for ours, theirs in zip(out.scores, expected.scores):
        torch.testing.assert_close(ours, theirs)
    if num_beams > 1:
        torch.testing.assert_close(out.sequences_scores, expected.sequences_scores)
        assert out.beam_indices is not None
    else:
        assert "sequences_scores" not in out
    assert out.generate_output is not None and out.audio_tag_logits.shape[:2] == (2, 3)


def test_encoder_pass_cache_answers_its_windows_only(tiny_pair):
    from whisper_at_hf import EncoderPassCache

    _, joint = tiny_pair
    features = torch.randn(3, 80, 3000, generator=torch.Generator().manual_seed(24))
    with torch.no_grad():
        encoded = joint.encode(features)
        cache = EncoderPassCache(features, encoded)
        passes = count_encoder_passes(joint)
        reordered = joint.encode(features[[2, 0]], encoder_pass_cache=cache)
        assert passes[0] == 0
        torch.testing.assert_close(reordered.pooled_hidden_states, encoded.pooled_hidden_states[[2, 0]])
        other = torch.randn(1, 80, 3000)
        joint.encode(torch.cat([features[:1], other]), encoder_pass_cache=cache)  # one unknown row: a real pass
        assert passes[0] == 1
        # generate answers Whisper's encoder calls from the cache too
        out = joint.generate(features, encoder_pass_cache=cache, max_new_tokens=4)
        assert passes[0] == 1 and out.shape[0] == 3


# --------------------------------------------------------------------------------------------------------------------
# A drop-in for Whisper: what transformers' own Whisper model tests check, on our class (issue 20)
# --------------------------------------------------------------------------------------------------------------------
def eager_pair(seed: int = 0) -> tuple[WhisperForConditionalGeneration, WhisperForAudioTaggingAndASR]:
    """A tiny plain Whisper and the joint model on its weights, both on eager attention (which returns weights)."""
    plain = tiny_whisper(seed=seed)
    plain.set_attn_implementation("eager")
    torch.manual_seed(seed + 1)
    joint = WhisperForAudioTaggingAndASR.from_whisper(plain).eval()
    joint.set_attn_implementation("eager")
    return plain, joint


DECODER_IDS = torch.tensor([[100, 5, 6, 7], [100, 8, 9, 10]])


def test_forward_takes_whispers_parameters_in_whispers_order():
    import inspect

    ours = inspect.signature(WhisperForAudioTaggingAndASR.forward).parameters
    whisper = inspect.signature(WhisperForConditionalGeneration.forward).parameters
    positional = [name for name, param in whisper.items() if param.kind is param.POSITIONAL_OR_KEYWORD]
    assert [name for name, param in ours.items() if param.kind is param.POSITIONAL_OR_KEYWORD] == positional
    assert positional[:4] == ["self", "input_features", "attention_mask", "decoder_input_ids"]
    for extra in ("audio_labels", "at_time_res", "encoder_pass_cache"):
        assert ours[extra].kind is inspect.Parameter.KEYWORD_ONLY
    plain, joint = eager_pair()
    features = torch.randn(2, 80, 3000, generator=torch.Generator().manual_seed(30))
    with torch.no_grad():
        by_position = joint(features, None, DECODER_IDS)  # Whisper's positional call
        torch.testing.assert_close(by_position.logits, plain(features, None, DECODER_IDS).logits)
        torch.testing.assert_close(by_position.audio_tag_logits, joint.tag(features))


def test_hidden_states_and_attentions_are_whispers_from_the_one_pass():
    plain, joint = eager_pair()
    passes = count_encoder_passes(joint)
    features = torch.randn(2, 80, 3000, generator=torch.Generator().manual_seed(31))
    with torch.no_grad():
        ours = joint(features, decoder_input_ids=DECODER_IDS, output_hidden_states=True, output_attentions=True)
        theirs = plain(features, decoder_input_ids=DECODER_IDS, output_hidden_states=True, output_attentions=True)
        assert passes[0] == 1  # states, attentions and tags from one encoder pass
        tags = joint.tag(features)
    layers = joint.config.encoder_layers
    assert len(ours.encoder_hidden_states) == len(theirs.encoder_hidden_states) == layers + 1
    assert len(ours.encoder_attentions) == len(theirs.encoder_attentions) == layers
    assert ours.encoder_attentions[0].shape == (2, joint.config.encoder_attention_heads, 1500, 1500)
    for field in ("encoder_hidden_states", "encoder_attentions", "decoder_hidden_states", "decoder_attentions",
                  "cross_attentions"):
        assert len(ours[field]) == len(theirs[field]) > 0, field
        for mine, upstream in zip(ours[field], theirs[field]):
            assert_close_to_scale(mine, upstream, msg=field)
    torch.testing.assert_close(ours.logits, theirs.logits)
    torch.testing.assert_close(ours.audio_tag_logits, tags)
    with torch.no_grad():  # tagging-only forward: the encoder's states still come back when asked for
        tag_only = joint(features, output_hidden_states=True)
    assert len(tag_only.encoder_hidden_states) == layers + 1 and tag_only.logits is None


def test_return_dict_false_is_whispers_tuple_then_the_tags():
    plain, joint = eager_pair()
    features = torch.randn(2, 80, 3000, generator=torch.Generator().manual_seed(32))
    labels = torch.tensor([[5, 6, 7, 101], [8, 9, 10, 101]])
    with torch.no_grad():
        for kwargs in ({"decoder_input_ids": DECODER_IDS}, {"labels": labels, "output_hidden_states": True}):
            as_dict = joint(features, **kwargs)
            as_tuple = joint(features, return_dict=False, **kwargs)
            whisper_tuple = plain(features, return_dict=False, **kwargs)
            assert isinstance(as_tuple, tuple) and len(as_tuple) == len(as_dict.to_tuple())
            assert len(as_tuple) == len(whisper_tuple) + (1 if "decoder_input_ids" in kwargs else 2)
            for index, (mine, upstream) in enumerate(zip(as_tuple, whisper_tuple)):
                if isinstance(upstream, torch.Tensor):
                    torch.testing.assert_close(mine, upstream, msg=f"element {index}")
            torch.testing.assert_close(as_tuple[len(whisper_tuple)], as_dict.audio_tag_logits)


def test_from_pretrained_with_no_checkpoint_takes_config_and_state_dict():
    _, joint = eager_pair()
    loaded = WhisperForAudioTaggingAndASR.from_pretrained(None, config=joint.config, state_dict=joint.state_dict())
    for key, value in joint.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_init_equals_whisper_with_the_same_seed():
    """`Model(config)` draws Whisper's weights as Whisper does (sinusoidal encoder positions included); the head
    comes after, so the same seed gives the same Whisper."""
    from transformers.models.whisper.modeling_whisper import sinusoids

    config = WhisperATConfig.from_whisper_config(tiny_whisper(seed=0).config)
    torch.manual_seed(7)
    whisper = WhisperForConditionalGeneration(config)
    torch.manual_seed(7)
    joint = WhisperForAudioTaggingAndASR(config)
    ours = joint.state_dict()
    for key, value in whisper.state_dict().items():
        assert torch.equal(ours[key], value), key
    assert set(ours) - set(whisper.state_dict()) == {key for key in ours if key.startswith("audio_tagging_head.")}
    positions = joint.model.encoder.embed_positions.weight
    torch.testing.assert_close(positions, sinusoids(*positions.shape))
    assert joint.proj_out.weight is joint.get_input_embeddings().weight


def test_tied_output_embedding_after_every_construction_path(tmp_path):
    tiny_whisper(seed=0).save_pretrained(tmp_path / "base")
    _, joint = eager_pair()
    joint.config.base_model_name_or_path = str(tmp_path / "base")
    joint.save_pretrained(tmp_path / "full")
    joint.save_pretrained(tmp_path / "head", head_only=True)
    built = {
        "from_config": WhisperForAudioTaggingAndASR(joint.config),
        "from_whisper(model)": joint,
        "from_whisper(path)": WhisperForAudioTaggingAndASR.from_whisper(str(tmp_path / "base")),
        "from_pretrained(full)": WhisperForAudioTaggingAndASR.from_pretrained(tmp_path / "full"),
        "from_pretrained(head_only)": WhisperForAudioTaggingAndASR.from_pretrained(tmp_path / "head"),
    }
    for name, model in built.items():
        assert model.proj_out.weight is model.get_input_embeddings().weight, name
    summary = built["from_whisper(model)"].num_parameters_summary()
    assert summary.split("all params: ")[1] == built["from_pretrained(full)"].num_parameters_summary().split(
        "all params: "
    )[1]


def test_gradient_checkpointing_backward_compatibility():
    """`config.gradient_checkpointing=True` (the old switch) turns checkpointing on in the encoder that runs."""
    config = WhisperATConfig.from_whisper_config(tiny_whisper(seed=0).config, gradient_checkpointing=True)
    model = WhisperForAudioTaggingAndASR(config)
    assert model.model.encoder.gradient_checkpointing
    assert all(layer.gradient_checkpointing for layer in model.model.encoder.layers)
    assert "gradient_checkpointing" not in model.config.to_dict()  # consumed, as Whisper consumes it
    model.train()
    model.audio_tagging_head.zero_grad()
    model(torch.randn(1, 80, 3000), audio_labels=torch.ones(1, 527)).loss.backward()
    assert model.audio_tagging_head.classifier.weight.grad is not None


def test_attention_implementation_can_be_switched():
    _, joint = eager_pair()
    assert joint.config._attn_implementation == "eager"
    assert joint.model.encoder.config._attn_implementation == "eager"
    joint.set_attn_implementation("sdpa")
    assert joint.config._attn_implementation == joint.model.decoder.config._attn_implementation == "sdpa"


@pytest.mark.slow
def test_attention_switch_does_not_depend_on_a_plain_whisper_check_first(tmp_path):
    """In a fresh process, with no plain Whisper class asked first (its cached answer would be inherited)."""
    child = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        from conftest import tiny_whisper_config
        from whisper_at_hf import WhisperATConfig, WhisperForAudioTaggingAndASR
        model = WhisperForAudioTaggingAndASR(WhisperATConfig.from_whisper_config(tiny_whisper_config()))
        model.set_attn_implementation("eager")
        assert model.config._attn_implementation == "eager", model.config._attn_implementation
        assert model.model.encoder.config._attn_implementation == "eager"
        print("OK")
        """
    )
    from conftest import REPO_ROOT

    done = subprocess.run(
        [sys.executable, "-c", child, str(REPO_ROOT / "tests")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and "OK" in done.stdout, done.stdout[-2000:] + done.stderr[-3000:]
    assert "does not support setting its attention implementation" not in done.stderr


class _SpeechPairs(torch.utils.data.Dataset):
    """A few (features, token labels) pairs: enough to move a tiny decoder."""

    def __init__(self, count: int = 8):
        generator = torch.Generator().manual_seed(40)
        self.features = torch.randn(count, 80, 3000, generator=generator)
        self.labels = torch.randint(1, 100, (count, 6), generator=generator)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict:
        return {"input_features": self.features[index], "labels": self.labels[index]}


def test_fine_tuning_the_decoder_keeps_the_released_head_valid(tmp_path):
    """The README recipe: `unfreeze_whisper(); freeze_encoder()`, then `Seq2SeqTrainer` trains Whisper's decoder;
    the encoder does not move, so the tags stay bit-identical, and `save_pretrained` keeps the head."""
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

    torch.manual_seed(0)
    model = WhisperForAudioTaggingAndASR.from_whisper(tiny_whisper(seed=0))
    model.unfreeze_whisper()
    model.freeze_encoder()
    probe = torch.randn(2, 80, 3000, generator=torch.Generator().manual_seed(41))
    with torch.no_grad():
        tags_before = model.eval().tag(probe)
    decoder_before = {key: value.clone() for key, value in model.model.decoder.state_dict().items()}
    encoder_before = {key: value.clone() for key, value in model.model.encoder.state_dict().items()}
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, max_steps=3, learning_rate=1e-2,
        report_to=[], save_strategy="no", logging_steps=1, use_cpu=True, dataloader_num_workers=0,
    )
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=_SpeechPairs())
    losses = [trainer.train().training_loss]
    assert all(np.isfinite(losses))
    decoder_after = model.model.decoder.state_dict()
    moved = [key for key, value in decoder_after.items() if not torch.equal(value, decoder_before[key])]
    assert moved, "the decoder did not train"
    for key, value in model.model.encoder.state_dict().items():
        assert torch.equal(value, encoder_before[key]), key
    with torch.no_grad():
        assert torch.equal(model.eval().tag(probe), tags_before)
    trainer.save_model(str(tmp_path / "tuned"))
    reloaded = WhisperForAudioTaggingAndASR.from_pretrained(tmp_path / "tuned").eval()
    with torch.no_grad():
        assert torch.equal(reloaded.tag(probe), tags_before)
    for key in moved:
        assert torch.equal(reloaded.model.decoder.state_dict()[key], model.model.decoder.state_dict()[key]), key


# ----- long-form generate: segments keep what the caller asked for (issue 21: memory flat in the input's length) -----
def _long_form_word_times_run(model, windows: int, **generate_kwargs):
    """Long-form `generate` with word times over `windows` 30 s windows of random features; returns the output and,
    per encoder call, how many live storages hold a layer's encoder attentions `(..., 1500, 1500)` of a window."""
    import gc

    features = torch.randn(1, 80, 3000 * windows - 700, generator=torch.Generator().manual_seed(0))
    held = []

    def count_attention_maps(*_):
        gc.collect()
        maps = [o for o in gc.get_objects() if isinstance(o, torch.Tensor) and o.shape[-2:] == (1500, 1500)]
        held.append(len({tensor.untyped_storage().data_ptr() for tensor in maps}))  # views of one map count once

    hook = model.model.encoder.register_forward_hook(count_attention_maps)
    try:
        with torch.no_grad():
            out = model.generate(
                features, attention_mask=torch.ones(1, features.shape[-1], dtype=torch.int32), return_timestamps=True,
                return_token_timestamps=True, return_segments=True, max_new_tokens=6, **generate_kwargs,
            )
    finally:
        hook.remove()
    return out, held


def test_long_form_word_times_hold_no_window_attentions_or_scores_over_the_call():
    """Whisper's `return_token_timestamps` turns attentions and scores on and keeps every window's in its segments
    until the call ends (216 MB of encoder attentions per window for tiny.en). Here at most the windows being decoded
    hold them while the loop runs, none is left in the segments, and tokens and word times are Whisper's own."""
    from conftest import tiny_timestamp_whisper

    plain = tiny_timestamp_whisper(encoder_layers=2, encoder_attention_heads=1).eval()
    joint = WhisperForAudioTaggingAndASR.from_whisper(plain).eval()  # Whisper's generation config too
    windows, layers = 4, plain.config.encoder_layers
    ours, held = _long_form_word_times_run(joint, windows)
    whisper, _ = _long_form_word_times_run(plain, windows)
    assert len(held) == windows and max(held) <= 2 * layers, held  # the window being decoded and the one before
    results = [segment["result"] for segment in ours["segments"][0]]
    assert len({round(float(segment["start"]) // 30) for segment in ours["segments"][0]}) == windows
    assert all(set(result) == {"sequences", "cache", "token_timestamps"} for result in results), results[0].keys()
    assert torch.equal(ours["sequences"], whisper["sequences"])
    assert_close_to_scale(ours["token_timestamps"], whisper["token_timestamps"], rel=1e-6)


def test_long_form_segments_keep_the_outputs_the_caller_asked_for():
    """`output_attentions=True` / `output_scores=True` asked for (with `return_dict_in_generate`): every window's
    segments keep them, as in Whisper."""
    from conftest import tiny_timestamp_whisper

    joint = WhisperForAudioTaggingAndASR.from_whisper(
        tiny_timestamp_whisper(encoder_layers=2, encoder_attention_heads=1)
    ).eval()
    out, _ = _long_form_word_times_run(joint, 2, output_scores=True, return_dict_in_generate=True)
    assert all({"scores"} <= set(s["result"]) and "encoder_attentions" not in s["result"] for s in out["segments"][0])
    out, _ = _long_form_word_times_run(joint, 2, output_attentions=True, return_dict_in_generate=True)
    assert all(len(s["result"]["encoder_attentions"]) == 2 for s in out["segments"][0])
