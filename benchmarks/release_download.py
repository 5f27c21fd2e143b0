"""First use vs cached use of a released variant by name, over loopback hosts.

`released_checkpoint("tiny.en")` against `tests/hub_server.py` playing the Hub (openai/whisper-tiny.en from
../shared/models) and the release host (a 302 redirect to a random tiny.en head in the original format):

- first resolution: Hub check + Whisper download + head download + shape check + conversion, into a fresh cache;
  reported as seconds and MB/s over the bytes downloaded;
- raw download rate of the release path alone (redirect + streaming to a temp file + rename);
- a cached resolution (no network) and the model load after each, i.e. `whisper-at --model tiny.en` start-up cost,
  first vs second time.

    python benchmarks/release_download.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO_ROOT, SHARED_MODELS, machine

sys.path.insert(0, str(REPO_ROOT / "tests"))


def synthetic_head(path: Path) -> None:
    """A random TL-TR head of tiny.en's shapes (4 layers x 384) in the original `at_model.*` format."""
    import torch
    from whisper_at.model import ModelDimensions, Whisper

    torch.manual_seed(0)
    dims = ModelDimensions(80, 1500, 384, 6, 4, 51864, 448, 384, 6, 4)
    state = {k: v for k, v in Whisper(dims).state_dict().items() if k.startswith("at_model.")}
    torch.save(state, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch
    from hub_server import start_hub_server
    from huggingface_hub.utils import disable_progress_bars

    from whisper_at_hf import WhisperForAudioTaggingAndASR
    from whisper_at_hf import original_release as release

    disable_progress_bars()
    print(machine())
    work = Path(tempfile.mkdtemp(prefix="release-bench-"))
    synthetic_head(work / "head.pth")
    server, state, endpoint = start_hub_server()
    whisper_dir = SHARED_MODELS / "whisper-tiny.en"
    state.add_repo("openai/whisper-tiny.en", whisper_dir)
    link = "/s/atq9so6w0qug5ai/tiny.en_ori.pth"
    state.release[link] = (work / "head.pth").read_bytes()
    # a 200 MB file on the release path, for the raw download rate
    state.release["/s/bench/blob.bin"] = os.urandom(200 * 1024 * 1024)
    os.environ.update({"HF_ENDPOINT": endpoint, release.RELEASE_ENDPOINT_ENV: endpoint})
    downloaded = len(state.release[link]) + sum(f.stat().st_size for f in whisper_dir.iterdir())

    rows: dict[str, list[float]] = {k: [] for k in ("raw", "first", "first_load", "cached", "cached_load")}
    for repeat in range(args.repeats):
        start = time.perf_counter()
        release.download_url(f"{endpoint}/s/bench/blob.bin?dl=1", work / f"blob{repeat}.bin", progress=False)
        rows["raw"].append(time.perf_counter() - start)
        (work / f"blob{repeat}.bin").unlink()

        cache = work / f"cache{repeat}"
        start = time.perf_counter()
        path = release.released_checkpoint("tiny.en", cache_dir=cache, progress=False)
        rows["first"].append(time.perf_counter() - start)
        start = time.perf_counter()
        WhisperForAudioTaggingAndASR.from_pretrained(path, dtype=torch.float32)
        rows["first_load"].append(time.perf_counter() - start)

        start = time.perf_counter()
        again = release.released_checkpoint("tiny.en", cache_dir=cache, progress=False)
        rows["cached"].append(time.perf_counter() - start)
        assert again == path
        start = time.perf_counter()
        WhisperForAudioTaggingAndASR.from_pretrained(again, dtype=torch.float32)
        rows["cached_load"].append(time.perf_counter() - start)
    server.shutdown()

    med = {k: statistics.median(v) for k, v in rows.items()}
    mb = downloaded / 1e6
    print(f"repeats: {args.repeats} (medians)")
    print(f"raw release download (302 + stream + rename), 200 MB: {200 * 1.048576 / med['raw']:.0f} MB/s")
    print(
        f"first resolution: {med['first']:.2f} s for {mb:.1f} MB downloaded + conversion = "
        f"{mb / med['first']:.0f} MB/s end to end"
    )
    first_total = med["first"] + med["first_load"]
    cached_total = med["cached"] + med["cached_load"]
    print(f"first use (resolve + load): {first_total:.2f} s; cached (resolve {med['cached'] * 1000:.1f} ms + load): "
          f"{cached_total:.2f} s; ratio first/cached {first_total / cached_total:.1f}x")


if __name__ == "__main__":
    main()
