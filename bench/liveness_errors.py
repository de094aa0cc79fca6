"""Error rates and speed of the depth liveness check on synthetic depth maps.

Generates live heads and attacks with :mod:`tests.support.depthmaps` under the landmarks of the real
test photos (placed in a 1280x720 door frame at 300-1200 mm; depth maps of 640x360 or 320x180),
with seeds the tests never use, and prints:

- APCER per attack type and overall (attacks judged live), with the reasons given;
- BPCER (live heads judged not live), with the reasons, split into "no nose reading" (a hole
  over the nose tip: the terminal should simply retry) and geometric rejections;
- each check's live minimum / attack maximum (the margins behind the thresholds);
- BPCER against the nose's protrusion (flatter noses), and APCER of bent photos per radius;
- P50/P99 of ``check_depth`` per depth resolution, and of the 68-point landmarks on a 720p frame.

    python -m tests.fetch_test_data
    .venv/bin/python -m bench.liveness_errors [--count 200] [--seed 20250101]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict
from collections.abc import Callable

import numpy as np
from PIL import Image

from bench.harness import add_load_flag, check_load
from bench.stats import percentile
from gatekeeper import faces, liveness
from gatekeeper.liveness import Landmarks, LivenessResult
from tests.fetch_test_data import FACE_PHOTOS as PHOTOS
from tests.fetch_test_data import test_image as photo_path
from tests.support import depthmaps
from tests.support.depthmaps import BendAxis, Scene

FRAME = (1280, 720)
DEPTH_SIZES = ((640, 360), (320, 180))
DISTANCES = (300.0, 1200.0)
_T = liveness.DEFAULT_THRESHOLDS
#: Each measurement and the threshold its "high enough" check passes from (None: reported only).
CHECKS = {
    "relief_mm": _T.relief_low.threshold,
    "cheek_drop_mm": _T.cheek_low.threshold,
    "temple_drop_mm": _T.temple_low.threshold,
    "profile_mm": None,
    "peak_mm": _T.peak_low.threshold,
    "span_mm": _T.span_low.threshold,
    "plane_rms_mm": _T.plane_rms_low.threshold,
    "nose_above_sheet_mm": _T.nose_above_sheet_low.threshold,
}

Render = Callable[[Scene, float, np.random.Generator], np.ndarray]


def p50_p99(ms: list[float]) -> str:
    return f"P50 {percentile(ms, 50):.2f}  P99 {percentile(ms, 99):.2f}"


def attack_renderers() -> dict[str, Render]:
    """Each attack type with its parameters drawn from rng (live heads first)."""

    def live(scene: Scene, d: float, rng: np.random.Generator) -> np.ndarray:
        return depthmaps.live_face(scene, d, rng, noise_scale=rng.uniform(0.5, 2.0))

    def flat(scene: Scene, d: float, rng: np.random.Generator) -> np.ndarray:
        tilt = rng.uniform(0, 45)
        direction = rng.uniform(0, 2 * np.pi)
        return depthmaps.flat_photo(
            scene,
            d,
            rng,
            tilt_x_deg=tilt * np.cos(direction),
            tilt_y_deg=tilt * np.sin(direction),
            noise_scale=rng.uniform(0.5, 2.0),
        )

    def bent(scene: Scene, d: float, rng: np.random.Generator) -> np.ndarray:
        return depthmaps.bent_photo(
            scene,
            d,
            rng,
            radius_mm=rng.uniform(80, 300),
            axis=BendAxis.VERTICAL if rng.random() < 0.5 else BendAxis.HORIZONTAL,
            convex=rng.random() < 0.8,
            noise_scale=rng.uniform(0.5, 2.0),
        )

    def folded(scene: Scene, d: float, rng: np.random.Generator) -> np.ndarray:
        return depthmaps.folded_photo(
            scene,
            d,
            rng,
            fold_deg=rng.uniform(10, 40),
            axis=BendAxis.VERTICAL if rng.random() < 0.5 else BendAxis.HORIZONTAL,
            noise_scale=rng.uniform(0.5, 2.0),
        )

    def screen(scene: Scene, d: float, rng: np.random.Generator) -> np.ndarray:
        return depthmaps.screen(
            scene,
            d,
            rng,
            tilt_x_deg=rng.uniform(-30, 30),
            tilt_y_deg=rng.uniform(-30, 30),
            noise_scale=rng.uniform(0.5, 2.0),
        )

    return {"live": live, "flat_photo": flat, "bent_photo": bent, "screen": screen,
            "folded_photo": folded}  # fmt: skip


def draw_scene(
    landmarks: dict[str, Landmarks], rng: np.random.Generator
) -> tuple[Scene, float, tuple[int, int]]:
    name = PHOTOS[rng.integers(len(PHOTOS))]
    distance = rng.uniform(*DISTANCES)
    depth_size = DEPTH_SIZES[rng.integers(len(DEPTH_SIZES))]
    placed = depthmaps.place_face(
        landmarks[name], distance, centre=(rng.uniform(0.3, 0.7), rng.uniform(0.35, 0.6))
    )
    return Scene(placed, FRAME, depth_size), distance, depth_size


def judge(scene: Scene, depth: np.ndarray, timings: list[float]) -> LivenessResult:
    start = time.perf_counter()
    result = liveness.check_depth(depth, scene.image_size, scene.landmarks)
    timings.append(time.perf_counter() - start)
    return result


def run_set(
    landmarks: dict[str, Landmarks], count: int, seed: int
) -> tuple[dict[str, list[LivenessResult]], dict[tuple[int, int], list[float]]]:
    results: dict[str, list[LivenessResult]] = defaultdict(list)
    timings: dict[tuple[int, int], list[float]] = defaultdict(list)
    for index, (kind, render) in enumerate(attack_renderers().items()):
        rng = np.random.default_rng([seed, index])
        for _ in range(count):
            scene, distance, depth_size = draw_scene(landmarks, rng)
            depth = render(scene, distance, rng)
            results[kind].append(judge(scene, depth, timings[depth_size]))
    return results, timings


def print_rates(results: dict[str, list[LivenessResult]]) -> None:
    print("== APCER (attacks judged live) and BPCER (live judged not live)")
    attacks_total = attacks_live = 0
    for kind, outcomes in results.items():
        live = sum(r.live for r in outcomes)
        reasons = Counter(str(r.reason) for r in outcomes if not r.live)
        if kind == "live":
            no_nose = sum(not r.live and no_nose_reading(r) for r in outcomes)
            rejected = len(outcomes) - live
            print(
                f"BPCER  {kind:13s} {rejected:4d}/{len(outcomes)} = "
                f"{100 * rejected / len(outcomes):5.2f} %   (no nose reading: {no_nose}; "
                f"geometric: {rejected - no_nose})  reasons {dict(reasons)}"
            )
        else:
            attacks_total += len(outcomes)
            attacks_live += live
            print(
                f"APCER  {kind:13s} {live:4d}/{len(outcomes)} = "
                f"{100 * live / len(outcomes):5.2f} %   reasons {dict(reasons)}"
            )
    print(
        f"APCER  {'all attacks':13s} {attacks_live:4d}/{attacks_total} = "
        f"{100 * attacks_live / attacks_total:5.2f} %"
    )
    scores = [r.score for r in results["live"] if r.live]
    attack_scores = [r.score for k, v in results.items() if k != "live" for r in v]
    print(
        f"score: live (accepted) P1 {percentile(scores, 1):.3f} P50 {percentile(scores, 50):.3f}; "
        f"attacks P99 {percentile(attack_scores, 99):.3f} max {max(attack_scores):.3f}"
    )


def print_margins(results: dict[str, list[LivenessResult]]) -> None:
    print("== each check: its threshold, live P1 / min against each attack's max (mm)")
    header = f"{'check':22s} {'passes':>7s} {'live P1':>8s} {'live min':>8s}"
    kinds = [k for k in results if k != "live"]
    print(header + "".join(f" {k[:12]:>12s}" for k in kinds))

    def values(kind: str, key: str) -> list[float]:
        return [
            float(r.measurements[key]) for r in results[kind] if r.measurements.get(key) is not None
        ]

    for key, threshold in CHECKS.items():
        live = values("live", key)
        passes = "-" if threshold is None else f">={threshold:g}"
        row = f"{key:22s} {passes:>7s} {percentile(live, 1):8.1f} {min(live):8.1f}"
        for kind in kinds:
            attack = values(kind, key)
            row += f" {max(attack):12.1f}" if attack else f" {'-':>12s}"
        print(row)


def no_nose_reading(result: LivenessResult) -> bool:
    """Rejected because the nose tip fell in a hole (a retry, not a judgement)."""
    return (
        result.reason == liveness.LivenessReason.TOO_FEW_DEPTH_PIXELS
        and result.measurements.get("nose_mm") is None
    )


def print_nose_sweep(landmarks: dict[str, Landmarks], count: int, seed: int) -> None:
    print("== BPCER against the nose tip's protrusion over the skull (model default 16-28 mm)")
    for nose_mm in (8.0, 10.0, 12.0, 14.0, 16.0, 20.0, 24.0):
        rng = np.random.default_rng([seed, 100, int(nose_mm)])
        outcomes = []
        for _ in range(count):
            scene, distance, _ = draw_scene(landmarks, rng)
            depth = depthmaps.live_face(scene, distance, rng, nose_mm=nose_mm)
            outcomes.append(liveness.check_depth(depth, FRAME, scene.landmarks))
        rejected = [r for r in outcomes if not r.live]
        geometric = [r for r in rejected if not no_nose_reading(r)]
        reasons = Counter(str(r.reason) for r in geometric)
        print(
            f"nose {nose_mm:4.0f} mm: BPCER {100 * len(rejected) / count:5.1f} %  "
            f"(geometric {100 * len(geometric) / count:5.1f} %: {dict(reasons)})"
        )


def print_bend_sweep(landmarks: dict[str, Landmarks], count: int, seed: int) -> None:
    print("== bent photos per radius (convex, both axes): APCER and reasons")
    for radius in (60.0, 80.0, 120.0, 200.0, 300.0):
        rng = np.random.default_rng([seed, 200, int(radius)])
        outcomes = []
        for i in range(count):
            scene, distance, _ = draw_scene(landmarks, rng)
            axis = BendAxis.VERTICAL if i % 2 else BendAxis.HORIZONTAL
            depth = depthmaps.bent_photo(scene, distance, rng, radius_mm=radius, axis=axis)
            outcomes.append(liveness.check_depth(depth, FRAME, scene.landmarks))
        live = sum(r.live for r in outcomes)
        reasons = Counter(str(r.reason) for r in outcomes if not r.live)
        print(f"radius {radius:4.0f} mm: APCER {100 * live / count:5.1f} %  {dict(reasons)}")


def print_timings(
    timings: dict[tuple[int, int], list[float]], landmarks: dict[str, Landmarks]
) -> None:
    print("== check_depth time (ms)")
    for size, values in sorted(timings.items(), reverse=True):
        ms = [v * 1000 for v in values]
        print(
            f"depth {size[0]}x{size[1]}: P50 {percentile(ms, 50):.2f}  "
            f"P99 {percentile(ms, 99):.2f}  (n={len(ms)})"
        )
    # 640x480 depth map (4:3 frame): the size the issue names.
    rng = np.random.default_rng(7)
    lm = depthmaps.place_face(landmarks["obama.jpg"], 600.0, frame_size=(1280, 960))
    scene = Scene(lm, (1280, 960), (640, 480))
    depth = depthmaps.live_face(scene, 600.0, rng)
    ms = []
    for _ in range(200):
        start = time.perf_counter()
        liveness.check_depth(depth, scene.image_size, scene.landmarks)
        ms.append((time.perf_counter() - start) * 1000)
    print(f"depth 640x480 (face at 600 mm): {p50_p99(ms)}")
    # The 68-point landmarks on a 1280x720 frame (obama pasted at about 600 mm).
    photo = Image.open(photo_path("obama.jpg")).convert("RGB")
    frame = Image.new("RGB", FRAME, (90, 90, 90))
    small = photo.resize((photo.width * 2 // 5, photo.height * 2 // 5))
    frame.paste(small, (400, 20))
    rgb = np.asarray(frame)
    box = faces.engine().detect(rgb)[0].box
    liveness.face_landmarks(rgb, box)  # warm: loads the model
    ms = []
    for _ in range(100):
        start = time.perf_counter()
        liveness.face_landmarks(rgb, box)
        ms.append((time.perf_counter() - start) * 1000)
    print(f"face_landmarks (68 points, 720p): {p50_p99(ms)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200, help="maps per type (default 200)")
    parser.add_argument("--seed", type=int, default=20250101, help="differs from the tests' seeds")
    add_load_flag(parser)
    args = parser.parse_args()
    check_load("error rates and timings", args.force)
    landmarks = depthmaps.photo_landmarks()
    results, timings = run_set(landmarks, args.count, args.seed)
    print(
        f"{args.count} maps per type; seed {args.seed}; photos {', '.join(PHOTOS)}; "
        f"distances {DISTANCES[0]:.0f}-{DISTANCES[1]:.0f} mm; depth "
        + " / ".join(f"{w}x{h}" for w, h in DEPTH_SIZES)
    )
    print_rates(results)
    print_margins(results)
    print_nose_sweep(landmarks, args.count // 2, args.seed)
    print_bend_sweep(landmarks, args.count // 2, args.seed)
    print_timings(timings, landmarks)


if __name__ == "__main__":
    main()
