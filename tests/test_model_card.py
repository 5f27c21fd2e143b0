"""Model cards: the 16 committed original-variant cards come from one table and stay in sync with it."""

from __future__ import annotations

import importlib.util

import pytest
import yaml
from conftest import REPO_ROOT, tiny_whisper

from whisper_at_hf import WhisperForAudioTaggingAndASR
from whisper_at_hf.model_card import (
    ORIGINAL_VARIANTS,
    find_original_variant,
    model_card_for_model,
    original_variant_card,
)

CARDS_DIR = REPO_ROOT / "model_cards"
# the original release's AudioSet mAP (TL-TR, TL-TR-512), as the issue lists them
PUBLISHED_MAP = {
    "large-v2": (41.7, 40.3), "large-v1": (42.1, 41.6), "medium.en": (41.4, 41.1), "medium": (40.8, 41.2),
    "small.en": (40.1, 39.9), "small": (39.8, 39.8), "base.en": (37.5, None), "base": (37.6, None),
    "tiny.en": (35.8, None), "tiny": (36.5, None),
}  # fmt: skip


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def load_generator():
    spec = importlib.util.spec_from_file_location("generate_model_cards", CARDS_DIR / "generate_model_cards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_cards_are_generated_from_the_table(capsys):
    assert load_generator().main(["--check"]) == 0, capsys.readouterr().err
    committed = sorted(path.parent.name for path in CARDS_DIR.glob("*/README.md"))
    assert committed == sorted(variant.repo_name for variant in ORIGINAL_VARIANTS)
    assert len(committed) == 16


def test_card_metadata_and_sections():
    assert {(v.whisper, v.low_dim) for v in ORIGINAL_VARIANTS} == {
        (whisper, low) for whisper, maps in PUBLISHED_MAP.items() for low, value in zip((False, True), maps) if value
    }
    for variant in ORIGINAL_VARIANTS:
        card = (CARDS_DIR / variant.repo_name / "README.md").read_text(encoding="utf-8")
        meta = front_matter(card)
        assert meta["library_name"] == "transformers" and meta["license"]
        assert meta["pipeline_tag"] and "audio-tagging" in meta["tags"]
        assert meta["base_model"] == variant.base_model and meta["datasets"]
        (result,) = meta["model-index"][0]["results"]
        assert result["metrics"][0]["value"] == PUBLISHED_MAP[variant.whisper][variant.low_dim]
        assert meta["language"] == (["en"] if variant.whisper.endswith(".en") else ["multilingual"])
        for section in ("## Usage", "## Training", "## Limitations", 'pipeline("whisper-at"', "from_pretrained"):
            assert section in card
        assert ("TL-TR-512" in card) == variant.low_dim and variant.head_file in card
    assert front_matter(original_variant_card("large-v1"))["base_model"] == "openai/whisper-large"


def test_variant_lookup():
    assert find_original_variant("large-v2_ori.pth").name == "large-v2"
    assert find_original_variant("/x/small.en_low.pth").name == "small.en_low"
    assert find_original_variant("large_low.pth").name == "large-v2_low"
    assert find_original_variant("tiny_low.pth") is None and find_original_variant("head.pth") is None
    with pytest.raises(ValueError, match="not one of"):
        original_variant_card("huge")


def _hub_card(text: str):
    """The card as the Hub's client reads it (`huggingface_hub.ModelCard`): metadata, model-index -> EvalResults."""
    from huggingface_hub import ModelCard

    card = ModelCard(text)
    data = card.data
    if data.license == "other":
        assert data.license_name and data.license_link, "license other needs license_name and license_link"
    for result in data.eval_results or []:
        assert result.task_type == "audio-classification" and result.dataset_type and result.dataset_name
        assert result.dataset_type != "held-out split" and " " not in result.dataset_type
        if result.metric_type in ("map", "accuracy"):
            assert 1.0 < result.metric_value <= 100.0, "metrics are in percent on every card"
    return data


def test_committed_cards_follow_the_hub_schema():
    for variant in ORIGINAL_VARIANTS:
        data = _hub_card((CARDS_DIR / variant.repo_name / "README.md").read_text(encoding="utf-8"))
        (result,) = data.eval_results
        assert (result.metric_type, result.metric_value) == ("map", variant.audioset_map)
        assert result.dataset_type == "agkphysics/AudioSet" and "audioset" in data.tags
        assert data.base_model == variant.base_model and data.get("base_model_relation") is None
        assert data.license == "bsd-2-clause"


def _trained_model():
    model = WhisperForAudioTaggingAndASR.from_whisper(tiny_whisper(), id2label={0: "Beep", 1: "Silence"})
    model.config.base_model_name_or_path = "openai/whisper-tiny.en"
    return model


def test_card_for_a_trained_head():
    from whisper_at_hf.training import training_card

    model = _trained_model()
    card = training_card(
        model, "my-head", {"eval_mAP": 0.93125, "eval_accuracy": 0.875, "eval_loss": 0.2},
        {"epochs": 3, "script": "training/train_head.py"}, head_only=True, dataset_name="my-sounds",
        dataset_type="audiofolder", eval_split="validation", repo_id="me/my-head",
    )  # fmt: skip
    data = _hub_card(card)
    assert data.base_model == "openai/whisper-tiny.en" and data.get("base_model_relation") == "adapter"
    assert "audioset" not in data.tags and "custom-labels" in data.tags
    assert data.datasets is None  # local data: no Hub dataset to link
    results = {result.metric_type: result for result in data.eval_results}
    assert results["map"].metric_value == 93.12 and results["accuracy"].metric_value == 87.5  # fractions -> percent
    assert {(r.dataset_name, r.dataset_type, r.dataset_split) for r in data.eval_results} == {
        ("my-sounds", "audiofolder", "validation")
    }
    assert "license" not in card.split("---")[1] and "No license was chosen" in card
    assert "AudioSet is drawn from YouTube" not in card
    assert "2 custom classes" in card and "train_head.py" in card and "base_model=" in card
    assert 'model="me/my-head"' in card
    head_params = sum(p.numel() for p in model.audio_tagging_head.parameters())
    assert f"{head_params / 1e6:.1f}M parameters, 2 classes" in card

    hub = training_card(
        model, "my-head", {"eval_mAP": 0.5}, {}, head_only=False, dataset_name="me/my-sounds",
        dataset_type="me/my-sounds", eval_split="test", license="other", license_name="my-data-license",
        license_link="https://example.com/license",
    )  # fmt: skip
    data = _hub_card(hub)
    assert data.datasets == ["me/my-sounds"] and data.license_name == "my-data-license"
    assert data.get("base_model_relation") is None  # a full checkpoint is no adapter
    with pytest.raises(ValueError, match="license_name and license_link"):
        training_card(model, "x", {}, {}, head_only=True, license="other")


def test_card_advertises_snippets_that_run_on_this_checkpoint():
    """Every snippet's entry point is one the checkpoint supports (they are run in test_pipeline_asr_whisper_at)."""
    card = model_card_for_model(_trained_model(), "my-head", repo_id="me/my-head", head_only=True)
    assert 'pipeline("automatic-speech-recognition", model="me/my-head", trust_remote_code=True)' in card
    assert 'pipeline("whisper-at", model="me/my-head")' in card


SEVEN = {0: "Door knock", 1: "Kettle", 2: "Dog", 3: "Cat", 4: "Alarm", 5: "Speech", 6: "Silence"}


def test_card_of_a_custom_head_describes_its_own_labels_data_and_licence():
    """A 7-class head is no AudioSet head: its card names its classes (from id2label), claims no AudioSet dataset or
    licence, takes metrics as a dict or a list, and names the custom classes for trust_remote_code."""
    model = WhisperForAudioTaggingAndASR.from_whisper(tiny_whisper(), id2label=SEVEN)
    model.config.base_model_name_or_path = "openai/whisper-tiny.en"
    card = model_card_for_model(model, "door-sounds", repo_id="me/door-sounds", metrics={"mAP": 85.0})
    data = _hub_card(card)
    assert "527" not in card and "AudioSet" not in card and "agkphysics" not in card
    assert data.license is None and data.datasets is None and "audioset" not in data.tags
    assert "7 custom classes (Door knock, Kettle, Dog, Cat, Alarm, Speech, Silence)" in card
    assert "| mAP | 85.0 | not recorded |" in card and data.eval_results is None  # no dataset: no model-index
    for name in ("WhisperForAudioTaggingAndASR", "WhisperATConfig"):
        assert name in card
    assert 'pipeline("whisper-at-remote-code", model="me/door-sounds", trust_remote_code=True)' in card

    listed = [{"name": "mAP", "value": 85.0, "dataset": "Door sounds", "dataset_type": "me/door-sounds-data"}]
    for metrics in ({"mAP": 85.0}, listed):
        card = model_card_for_model(model, "door-sounds", metrics=metrics, datasets=["me/door-sounds-data"],
                                    license="apache-2.0")  # fmt: skip
        data = _hub_card(card)
        assert data.license == "apache-2.0" and data.datasets == ["me/door-sounds-data"]
        (result,) = data.eval_results
        assert (result.metric_type, result.metric_value, result.dataset_type) == ("map", 85.0, "me/door-sounds-data")


def test_card_of_an_audioset_head_still_says_audioset():
    model = WhisperForAudioTaggingAndASR.from_whisper(tiny_whisper())  # 527 classes
    data = _hub_card(card := model_card_for_model(model, "audioset-head"))
    assert "the 527 classes of the AudioSet ontology" in card
    assert data.datasets == ["agkphysics/AudioSet"] and data.license == "bsd-2-clause" and "audioset" in data.tags
