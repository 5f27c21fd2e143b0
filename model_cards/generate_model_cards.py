"""Writes the model cards of the 16 original Whisper-AT variants from the one table in `whisper_at_hf.original_variants`.

python model_cards/generate_model_cards.py            # (re)write model_cards/<repo name>/README.md
python model_cards/generate_model_cards.py --check    # exit 1 if a committed card is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from whisper_at_hf.model_card import original_variant_card
from whisper_at_hf.original_variants import ORIGINAL_VARIANTS


def render_all() -> dict[str, str]:
    """`{relative path: card text}` for every original variant."""
    return {f"{variant.repo_name}/README.md": original_variant_card(variant) for variant in ORIGINAL_VARIANTS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--check", action="store_true", help="only compare with the files on disk")
    args = parser.parse_args(argv)
    stale = []
    for relative, text in render_all().items():
        path = args.output_dir / relative
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(relative)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date (run model_cards/generate_model_cards.py):", *stale, sep="\n  ", file=sys.stderr)
        return 1
    print(f"{'checked' if args.check else 'wrote'} {len(ORIGINAL_VARIANTS)} model cards in {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
