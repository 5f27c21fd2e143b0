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


def test_card_for_a_trained_head():
    model = WhisperForAudioTaggingAndASR.from_whisper(tiny_whisper(), id2label={0: "Beep", 1: "Silence"})
    model.config.base_model_name_or_path = "openai/whisper-tiny.en"
    metric = {"name": "mAP", "type": "map", "value": 0.93, "dataset": "my-sounds", "split": "test"}
    card = model_card_for_model(
        model, "my-head", metrics=[metric], datasets=["me/my-sounds"], label_set="2 custom classes",
        training="Trained with training/train_head.py for 3 epochs.", head_only=True,
    )  # fmt: skip
    meta = front_matter(card)
    assert meta["base_model"] == "openai/whisper-tiny.en" and meta["datasets"] == ["me/my-sounds"]
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.93
    assert "2 custom classes" in card and "train_head.py" in card and "base_model=" in card
    head_params = sum(p.numel() for p in model.audio_tagging_head.parameters())
    assert f"{head_params / 1e6:.1f}M parameters, 2 classes" in card
