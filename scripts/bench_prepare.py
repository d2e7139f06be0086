"""``mer-ensemble prepare`` throughput on this CPU: videos per second and face crops per second.

Videos are made like the tests' (real EmoDB speech, 2 s; the astronaut photo drifting over a real
texture; one in five without a face) at two frame sizes, H.264 + AAC in MP4 at 25 fps, then
prepared with the default settings (faces searched at 5 fps with dlib+haar) by 1 and 2 jobs.

    OMP_NUM_THREADS=1 python scripts/bench_prepare.py --videos 40
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import markdown_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EMODB = Path(os.environ.get("MER_SHARED_DATA", REPO.parent / "shared" / "data")) / "emodb"


def make(folder: Path, count: int, size: tuple[int, int]) -> None:
    import pandas as pd
    import soundfile as sf

    from mer_ensemble.media.testing import make_video

    folder.mkdir(parents=True, exist_ok=True)
    names = pd.read_csv(EMODB / "label-train.csv")["name"].head(count)
    side = int(size[1] * 0.62)
    for i, name in enumerate(names):
        if (folder / f"{name}.mp4").exists():
            continue
        wave, rate = sf.read(str(EMODB / "wav" / f"{name}.wav"), dtype="float32")
        make_video(folder / f"{name}.mp4", wave, rate, face=i % 5 != 4, size=size, patch_side=side, seed=i,
                   texture=("gravel", "grass", "brick", "coffee")[i % 4])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--work", type=Path, default=Path("/tmp/prepare-bench"))
    args = parser.parse_args()
    from mer_ensemble.media import PrepareOptions, prepare_videos

    rows = []
    for size in ((320, 240), (640, 360)):
        src = args.work / f"videos-{size[0]}x{size[1]}"
        make(src, args.videos, size)
        for jobs in (1, 2):
            started = time.perf_counter()
            report = prepare_videos(src, args.work / f"out-{size[0]}-{jobs}", PrepareOptions(), jobs=jobs,
                                    overwrite=True, progress=False)
            seconds = time.perf_counter() - started
            counts = report.counts
            rows.append([f"{size[0]}x{size[1]}", jobs, counts["videos"], counts["no_face"], counts["faces"],
                         counts["frames"], f"{seconds:.1f}", f"{counts['videos'] / seconds:.2f}",
                         f"{counts['faces'] / seconds:.1f}", f"{counts['frames'] / seconds:.0f}"])
    markdown_table("prepare throughput (2 s EmoDB clips, 25 fps, faces searched at 5 fps, dlib+haar)",
                   ["frame size", "jobs", "videos", "without a face", "face crops", "frames decoded", "seconds",
                    "videos/s", "faces/s", "frames/s"], rows)


if __name__ == "__main__":
    main()
