"""Smoke test of benchmarks/flops.py: torch's FLOP counter agrees with the independent analytic count."""

from __future__ import annotations

import sys

from conftest import REPO_ROOT, tiny_whisper_config

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import flops  # noqa: E402


def test_tiny_random_config_counts_match_analytic():
    config = tiny_whisper_config()
    assert flops.count_encoder(config, batch=2) == flops.analytic_encoder(config, batch=2)
    assert flops.count_decoder(config, 4, prompt_tokens=2) == flops.analytic_decoder(config, 4, prompt_tokens=2)
    assert flops.count_head(config, 32, 0.4, batch=2) == flops.analytic_head(config, 32, 0.4, batch=2)
    assert flops.count_head(config, None, 30.0) == flops.analytic_head(config, None, 30.0)


def test_whisper_tiny_dims_and_ast_within_one_percent():
    config = flops.whisper_config("tiny")
    encoder, head = flops.count_encoder(config), flops.count_head(config)
    assert abs(encoder - flops.analytic_encoder(config)) <= 0.01 * encoder
    assert abs(head - flops.analytic_head(config)) <= 0.01 * head
    # sanity of the magnitudes: the head is a few percent of the encoder, AST (10 s) costs more than tiny's encoder
    assert 0.01 < head / encoder < 0.06
    ast = flops.count_ast()
    assert abs(ast - flops.analytic_ast()) <= 0.01 * ast
    assert ast > encoder
    # the comparison is sensitive: one more decoded token is a different count
    small = tiny_whisper_config()
    assert flops.count_decoder(small, 3) != flops.analytic_decoder(small, 2)
