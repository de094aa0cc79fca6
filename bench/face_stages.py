"""Benchmark and calibration of the face engine's stages on the real test photos.

Prints, for the numbers in docs/faces.md:

- ``timings``: P50/P99 of each stage (decode, detect, align, quality measures,
  descriptor, the whole enrolment check) over the test photos and a 1280x720 frame;
- ``detection``: the smallest face (box width, px) the downscaled HOG detection still finds in
  1280x720, 1920x1080 and 4000x3000 frames, per detection size and upsampling, with its time;
- ``door`` (default): the door's engine stage by stage on 720p door frames with a live depth
  map, each stage's P50 and its share of the engine's time, whether it is the floor or what
  would remove it; the detection copy as before (bilinear) and now (reduced first) side by
  side with the templates' drift; gallery searches at community sizes beside 100,000; the
  whole engine per request before and after, interleaved in the same run; and with the depth
  PNG decoded after the probe or beside it on a helper thread (as the server does), interleaved;
- ``quality``: how face size, blur and darkness move the measurements and the descriptor
  (distance to the same photo's full-quality template), simulated ID-card photos, and the
  same-person / different-person distances behind the person-ID tolerance.

    python -m tests.fetch_test_data
    .venv/bin/python -m bench.face_stages [door|timings|detection|quality|all] [--rounds 10]
        [--force]
"""

from __future__ import annotations

import os

# As the server does (server/__init__.py), before numpy loads OpenBLAS: a threaded sgemv over a
# large gallery would otherwise spin on the other core.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import io
import itertools
import time
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from bench.harness import add_load_flag, check_load
from bench.stats import percentile
from gatekeeper import faces, liveness
from gatekeeper.gallery import Gallery
from server.access.liveness import DepthUpload
from tests.fetch_test_data import FACE_PHOTOS as PHOTOS
from tests.fetch_test_data import test_image
from tests.gatekeeper import face_images
from tests.support import depthmaps


def person(name: str) -> str:
    return "biden" if name.startswith("biden") else "obama"


def jpeg(image: Image.Image | np.ndarray, quality: int = 92) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def load(name: str) -> tuple[bytes, np.ndarray]:
    data = test_image(name).read_bytes()
    return data, faces.load_image(data)


def door_frame(image: np.ndarray, box: faces.FaceBox, face_width: int, size=(1280, 720)) -> bytes:
    """The photo's face region scaled to ``face_width`` and pasted into a plain grey scene."""
    return jpeg(face_images.door_scene(image, box, face_width, size))


def timed(function: Callable[[], object], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def report(name: str, samples: list[float]) -> None:
    print(
        f"  {name:<38} n={len(samples):<4} P50 {percentile(samples, 50):7.1f} ms"
        f"   P99 {percentile(samples, 99):7.1f} ms"
    )


def run_timings(rounds: int) -> None:
    start = time.perf_counter()
    engine = faces.engine()
    print(f"models loaded in {(time.perf_counter() - start) * 1000:.0f} ms (once per process)")
    obama_bytes, obama = load("obama.jpg")
    inputs = [(name, *load(name)) for name in PHOTOS]
    obama_box = engine.detect(obama)[0].box
    frame_bytes = door_frame(obama, obama_box, 160)
    inputs.append(("frame 1280x720, face 160 px", frame_bytes, faces.load_image(frame_bytes)))
    stages: dict[str, list[float]] = {}
    for name, data, image in inputs:
        print(f"{name}: {image.shape[1]}x{image.shape[0]}, {len(data)} bytes")
        box = engine.detect(image)[0].box
        face = engine.align(image, box)
        per_image = {
            "decode (load_image)": lambda d=data: faces.load_image(d),
            "detect 640 px, upsample 1": lambda i=image: engine.detect(i),
            "detect 640 px, upsample 0": lambda i=image: engine.detect(i, upsample=0),
            "detect 320 px, upsample 1": lambda i=image: engine.detect(i, max_side=320),
            "align (5 landmarks, full res)": lambda i=image, b=box: engine.align(i, b),
            "quality measures": lambda i=image, f=face: faces.measure_face(i, f),
            "descriptor, 1 jitter": lambda i=image, f=face: engine.describe(i, f),
            "descriptor, 10 jitters": lambda i=image, f=face: engine.describe(i, f, num_jitters=10),
            "assess_enrolment_photo (all)": lambda d=data: faces.assess_enrolment_photo(d),
        }
        for stage, function in per_image.items():
            samples = timed(function, rounds if "10 jitters" not in stage else max(2, rounds // 4))
            report(stage, samples)
            if not name.startswith("frame"):
                stages.setdefault(stage, []).extend(samples)
    print("all four photos together:")
    for stage, samples in stages.items():
        report(stage, samples)
    del obama_bytes


# --- the door, stage by stage ---------------------------------------------------------------

#: What each door stage is bound by, and what would remove or shrink it (printed beside it).
DOOR_STAGE_NOTES = {
    "decode JPEG (load_image)": "floor: libjpeg-turbo, full size; the 5 landmarks and the "
    "descriptor need it (at half scale the probe moves: see above)",
    "detection copy (downscale)": "reduced 2:1 first, then bilinear; 0.6 ms at 4:1 box "
    "reduce, but boxes then move (a template by 0.09 once)",
    "detect (HOG, pass 1 of 3)": "floor of dlib's HOG at 320x180; only a smaller copy or "
    "a terminal sending the face box would remove it",
    "align (5 landmarks)": "floor: dlib's 5-point model",
    "descriptor (ResNet, 1 jitter)": "floor: dlib's ResNet, the model itself",
    "depth decode (PNG)": "floor: zlib inflate is most of it; decoding only the rows of "
    "the face would skip the check that the rest of the map is intact",
    "depth landmarks (68 points)": "needed: the checks read jaw, brows, nasion, mouth and "
    "nose tip, none among the probe's 5 points; only a 5-point geometry (new error rates) "
    "would remove it",
    "depth checks (geometry)": "numpy fits over a 12x12 grid and 32 ring samples",
}


def door_inputs() -> list[tuple[str, bytes, bytes]]:
    """The 720p door frames of ``bench.verify_face`` (its probe photos, faces about 340 px wide)
    with live depth maps, as that benchmark sends them."""
    from bench import verify_face  # the server's modules: imported only for this series

    inputs = []
    for name in verify_face.PROBES:
        frame, rgb = verify_face.door_frame(name)
        probe = faces.probe_face(rgb)
        if not probe.ok:
            raise SystemExit(f"no single face in the door frame of {name}")
        scene = depthmaps.Scene(
            liveness.face_landmarks(rgb, probe.face.box), (rgb.shape[1], rgb.shape[0]), (640, 360)
        )
        depth = depthmaps.to_png16(depthmaps.live_face(scene, 500, np.random.default_rng(7)))
        inputs.append((name, frame, depth))
    return inputs


def synthetic_gallery(size: int, probes: list[np.ndarray]) -> Gallery:
    """``size`` templates: the ``probes``' own (one person) and random ones (norm 0.9, as real
    descriptors, one person each)."""
    rng = np.random.default_rng(size)
    filler = rng.normal(size=(size - len(probes), faces.TEMPLATE_SIZE)).astype(np.float32)
    filler *= 0.9 / np.linalg.norm(filler, axis=1, keepdims=True)
    gallery = Gallery(capacity=size)
    gallery.add_many(
        [(f"tpl_probe{i}", "per_probe", probe) for i, probe in enumerate(probes)]
        + [(f"tpl_{i:06d}", f"per_{i:06d}", vector) for i, vector in enumerate(filler)]
    )
    return gallery


def door_request(frame: bytes, depth: bytes, gallery: Gallery) -> None:
    """What the engine does for one door request: decode, probe, depth liveness, search."""
    rgb = faces.load_image(frame)
    probe = faces.probe_face(rgb)
    live = liveness.assess_depth(depth, rgb, probe.face.box)
    match = gallery.search(probe.template, tolerance=0.5, margin=0.06)
    if not live.live or match.person_id != "per_probe":
        raise SystemExit("the door's engine did not recognise the live probe")


def door_request_overlapped(frame: bytes, depth: bytes, gallery: Gallery) -> None:
    """:func:`door_request` as the server runs it: the depth PNG decoded on a helper thread
    (``server.access.liveness.DepthUpload``) while this thread finds and describes the face."""
    rgb = faces.load_image(frame)
    upload = DepthUpload(depth, rgb)
    probe = faces.probe_face(rgb)
    live = liveness.assess_loaded(upload.decoded(), rgb, probe.face.box)
    match = gallery.search(probe.template, tolerance=0.5, margin=0.06)
    if not live.live or match.person_id != "per_probe":
        raise SystemExit("the door's engine did not recognise the live probe")


def run_door(rounds: int, gallery_size: int, force: bool) -> None:
    """The door's engine stage by stage (see the module docstring)."""
    engine = faces.engine()
    liveness.face_landmarks(np.zeros((8, 8, 3), np.uint8), faces.FaceBox(0, 0, 8, 8))  # load
    inputs = door_inputs()
    print(
        f"720p door frames of {', '.join(name for name, _, _ in inputs)} (bench.verify_face), "
        f"640x360 depth maps; {rounds} rounds each"
    )
    stages: dict[str, list[float]] = {}
    old_copy: list[float] = []
    drift = []
    for _name, frame, depth in inputs:
        rgb = faces.load_image(frame)
        probe = faces.probe_face(rgb)
        box, face = probe.face.box, probe.face
        max_side, upsample = faces.DOOR_DETECT_PASSES[0]
        scale = max_side / max(rgb.shape[:2])
        size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
        small = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
        depth_mm = liveness.load_depth(depth, rgb.shape[1] / rgb.shape[0])
        marks = liveness.face_landmarks(rgb, box)

        def copy(
            gap: float | None, image: np.ndarray = rgb, size: tuple[int, int] = size
        ) -> np.ndarray:
            return np.asarray(
                Image.fromarray(image).resize(size, Image.Resampling.BILINEAR, reducing_gap=gap)
            )

        per_stage: dict[str, Callable[[], object]] = {
            "decode JPEG (load_image)": lambda f=frame: faces.load_image(f),
            "detection copy (downscale)": lambda: copy(faces.DOOR_REDUCING_GAP),
            "detect (HOG, pass 1 of 3)": lambda s=small, m=max_side, u=upsample: engine.detect(
                s, max_side=m, upsample=u
            ),
            "align (5 landmarks)": lambda i=rgb, b=box: engine.align(i, b),
            "descriptor (ResNet, 1 jitter)": lambda i=rgb, f=face: engine.describe(i, f),
            "depth decode (PNG)": lambda d=depth, i=rgb: liveness.load_depth(
                d, i.shape[1] / i.shape[0]
            ),
            "depth landmarks (68 points)": lambda i=rgb, b=box: liveness.face_landmarks(i, b),
            "depth checks (geometry)": lambda d=depth_mm, i=rgb, m=marks: liveness.check_depth(
                d, (i.shape[1], i.shape[0]), m
            ),
        }
        for _ in range(rounds):  # interleaved, so a busy neighbour hits every stage alike
            for stage, function in per_stage.items():
                stages.setdefault(stage, []).extend(timed(function, 1))
            old_copy.extend(timed(lambda: copy(None), 1))
        saved = faces.DOOR_REDUCING_GAP
        try:
            faces.DOOR_REDUCING_GAP = None
            before = faces.probe_face(rgb).template
        finally:
            faces.DOOR_REDUCING_GAP = saved
        drift.append(faces.face_distance(before, probe.template))

    print_half_scale(inputs, rounds)
    templates = [faces.probe_face(faces.load_image(frame)).template for _, frame, _ in inputs]
    template = templates[0]
    searches = {}
    for size in sorted({2_000, 10_000, 30_000, 100_000, gallery_size}):
        gallery = synthetic_gallery(size, templates)
        samples = timed(lambda g=gallery: g.search(template, tolerance=0.5, margin=0.06), 50)
        searches[size] = samples
        del gallery
    stages[f"gallery search ({gallery_size:,} templates)"] = searches[gallery_size]

    total = sum(percentile(samples, 50) for samples in stages.values())
    print(f"  {'stage':<40} {'P50':>8} {'share':>6}   floor, or what would remove it")
    for stage, samples in stages.items():
        p50 = percentile(samples, 50)
        note = DOOR_STAGE_NOTES.get(stage, "floor: one sgemv over the float32 matrix")
        print(f"  {stage:<40} {p50:6.2f} ms {100 * p50 / total:5.1f} %   {note}")
    print(f"  {'sum of the stages':<40} {total:6.2f} ms")
    print(
        f"  detection copy: bilinear as before P50 {percentile(old_copy, 50):.2f} ms, now "
        f"{percentile(stages['detection copy (downscale)'], 50):.2f} ms; templates moved by "
        f"{max(drift):.3f} at most"
    )
    print("gallery search (one probe, synthetic templates; a community holds 2,000-30,000):")
    for size, samples in searches.items():
        print(f"  {size:>7,} templates   P50 {percentile(samples, 50):6.3f} ms")

    check_load("door engine per request, before and after", force)
    gallery = synthetic_gallery(gallery_size, templates)
    before_ms: list[float] = []
    after_ms: list[float] = []
    saved = faces.DOOR_REDUCING_GAP
    try:
        for _ in range(rounds):
            for _name, frame, depth in inputs:
                faces.DOOR_REDUCING_GAP = None
                before_ms.extend(timed(lambda f=frame, d=depth: door_request(f, d, gallery), 1))
                faces.DOOR_REDUCING_GAP = saved
                after_ms.extend(timed(lambda f=frame, d=depth: door_request(f, d, gallery), 1))
    finally:
        faces.DOOR_REDUCING_GAP = saved
    report("engine per request, before (bilinear)", before_ms)
    report("engine per request, now", after_ms)
    print(
        f"  {'now / before (P50)':<38} {percentile(after_ms, 50) / percentile(before_ms, 50):.3f}x"
    )

    check_load("door engine per request, the depth map decoded after or beside", force)
    after_ms, beside_ms = [], []
    for _ in range(rounds):
        for _name, frame, depth in inputs:
            after_ms.extend(timed(lambda f=frame, d=depth: door_request(f, d, gallery), 1))
            beside_ms.extend(
                timed(lambda f=frame, d=depth: door_request_overlapped(f, d, gallery), 1)
            )
    report("engine, depth decoded after the probe", after_ms)
    report("engine, depth decoded beside (server)", beside_ms)
    print(
        f"  {'beside / after (P50)':<38} "
        f"{percentile(beside_ms, 50) / percentile(after_ms, 50):.3f}x"
    )


def half_scale(frame: bytes) -> np.ndarray:
    """The JPEG decoded at half its size by libjpeg's DCT scaling (``Image.draft``)."""
    with Image.open(io.BytesIO(frame)) as image:
        image.draft("RGB", (image.width // 2, image.height // 2))
        return np.asarray(image.convert("RGB"))


def print_half_scale(inputs: list[tuple[str, bytes, bytes]], rounds: int) -> None:
    """Why the door still decodes in full: a half-scale decode is cheaper, but the probe
    aligned and described on it moves away from the full-resolution one."""
    engine = faces.engine()
    full_ms: list[float] = []
    half_ms: list[float] = []
    moved = []
    widths = []
    for _name, frame, _depth in inputs:
        full_ms.extend(timed(lambda f=frame: faces.load_image(f), rounds))
        half_ms.extend(timed(lambda f=frame: half_scale(f), rounds))
        probe = faces.probe_face(faces.load_image(frame))
        half = half_scale(frame)
        box = probe.face.box
        widths.append(box.width)
        half_box = faces.FaceBox(
            *(round(v / 2) for v in (box.left, box.top, box.right, box.bottom))
        )
        face = engine.align(half, half_box)
        moved.append(faces.face_distance(probe.template, engine.describe(half, face)))
    # Beyond the two frames: every test photo's face at door sizes in 720p and 1080p frames.
    for name in PHOTOS:
        _, image = load(name)
        photo_box = engine.detect(image)[0].box
        for size in ((1280, 720), (1920, 1080)):
            for width in (260, 300, 360, 420, 500):
                frame = door_frame(image, photo_box, width, size)
                probe = faces.probe_face(faces.load_image(frame))
                if not probe.ok:
                    continue
                box = probe.face.box
                widths.append(box.width)
                half = half_scale(frame)
                half_box = faces.FaceBox(
                    *(round(v / 2) for v in (box.left, box.top, box.right, box.bottom))
                )
                face = engine.align(half, half_box)
                moved.append(faces.face_distance(probe.template, engine.describe(half, face)))
    print(
        f"  half-scale JPEG decode (draft): P50 {percentile(half_ms, 50):.2f} ms against "
        f"{percentile(full_ms, 50):.2f} ms in full; the probe aligned and described on it moved "
        f"by {min(moved):.3f}-{max(moved):.3f}, median {float(np.median(moved)):.3f} "
        f"({len(moved)} door frames, boxes {min(widths)}-{max(widths)} px): "
        "not used, the door decodes in full"
    )


def run_detection() -> None:
    engine = faces.engine()
    _, obama = load("obama.jpg")
    box = engine.detect(obama)[0].box
    widths = (24, 28, 32, 36, 40, 48, 56, 64, 72, 80, 96, 112, 128, 160, 192, 224, 256)
    settings = [(320, 1), (480, 1), (640, 0), (640, 1), (800, 0), (960, 0), (1280, 0), (1600, 1)]
    for size in ((1280, 720), (1920, 1080), (4000, 3000)):
        frames = {w: faces.load_image(door_frame(obama, box, w, size)) for w in widths}
        print(f"frame {size[0]}x{size[1]}: smallest face box found (px) and detect time")
        for max_side, upsample in settings:
            found = [
                w for w in widths if engine.detect(frames[w], max_side=max_side, upsample=upsample)
            ]
            smallest = min(found) if found else None
            samples = timed(
                lambda f=frames[160], m=max_side, u=upsample: engine.detect(
                    f, max_side=m, upsample=u
                ),
                5,
            )
            # Monotonic: every face at least as large as the smallest found is found too.
            monotonic = bool(found) and found == [w for w in widths if w >= min(found)]
            print(
                f"  max_side {max_side:>4}, upsample {upsample}: smallest {smallest!s:>4} px"
                f"  (all larger found: {monotonic})   P50 {percentile(samples, 50):6.1f} ms"
            )


def analyse(image: np.ndarray) -> tuple[faces.FaceMeasurements, np.ndarray] | None:
    """Detect as enrolment does, measure and describe the largest face."""
    engine = faces.engine()
    found = engine.detect(image)
    if not found and max(image.shape[:2]) > faces.DETECT_MAX_SIDE:
        found = engine.detect(image, max_side=faces.ENROL_RETRY_DETECT_MAX_SIDE)
    if not found:
        return None
    face = engine.align(image, found[0].box)
    return faces.measure_face(image, face), engine.describe(image, face)


def run_quality() -> None:
    base = {}
    for name in PHOTOS:
        _, image = load(name)
        measured = analyse(image)
        assert measured is not None  # noqa: S101 - the test photos all hold a face
        base[name] = (image, *measured)
        m = measured[0]
        print(
            f"{name}: eye {m.eye_distance_px} px, box {m.face_width_px} px, "
            f"sharpness {m.sharpness}, brightness {m.brightness}"
        )

    def line(label: str, name: str, data: bytes) -> None:
        result = analyse(faces.load_image(data))
        if result is None:
            print(f"  {label:<28} not detected")
            return
        m, template = result
        same = [
            faces.face_distance(template, base[o][2])
            for o in PHOTOS
            if o != name and person(o) == person(name)
        ]
        other = [
            faces.face_distance(template, base[o][2]) for o in PHOTOS if person(o) != person(name)
        ]
        print(
            f"  {label:<28} eye {m.eye_distance_px:6.1f}  sharp {m.sharpness:6.1f}"
            f"  drift {faces.face_distance(template, base[name][2]):.3f}"
            f"  same-person {' '.join(f'{d:.3f}' for d in same) or '-':<12}"
            f"  other {' '.join(f'{d:.3f}' for d in other)}"
        )

    print("\nface size: whole photo downscaled to an eye distance (px)")
    for name in PHOTOS:
        image, m, _ = base[name]
        for eye in (48, 40, 32, 28, 24, 20, 16, 12):
            scale = eye / m.eye_distance_px
            small = Image.fromarray(image).resize(
                (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                Image.Resampling.LANCZOS,
            )
            line(f"{name} eye {eye}", name, jpeg(small))
    print("\nblur: Gaussian radius (px) on the full photo")
    for name in PHOTOS:
        image, m, _ = base[name]
        for radius in (1, 1.5, 2, 2.5, 3, 4, 6):
            blurred = Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius))
            line(f"{name} r {radius} (r/eye {radius / m.eye_distance_px:.3f})", name, jpeg(blurred))
    print("\ndarkness: brightness factor")
    for name in PHOTOS:
        image, _, _ = base[name]
        for factor in (0.5, 0.3):
            dark = ImageEnhance.Brightness(Image.fromarray(image)).enhance(factor)
            line(f"{name} x{factor}", name, jpeg(dark))
    print("\nID-card photos: 102x126 crops, face = fraction of the width, JPEG quality, blur")
    for name in PHOTOS:
        for fraction, quality, blur in itertools.product((0.5, 0.6, 0.7), (50, 75), (0, 1, 2)):
            data = id_card_photo(base[name][0], base[name][1].box, fraction, quality, blur)
            line(f"{name} {fraction} q{quality} b{blur}", name, data)
    print("\nfull photos, pairwise distances")
    for a, b in itertools.combinations(PHOTOS, 2):
        print(f"  {a:<11} {b:<11} {faces.face_distance(base[a][2], base[b][2]):.3f}")


def id_card_photo(
    image: np.ndarray, box: faces.FaceBox, face_fraction: float, quality: int, blur: float = 0
) -> bytes:
    """A 102x126 'chip photo': the face takes ``face_fraction`` of the width."""
    centre_x, centre_y = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    width = box.width / face_fraction
    height = width * 126 / 102
    crop = Image.fromarray(image).crop(
        (
            round(centre_x - width / 2),
            round(centre_y - height * 0.45),
            round(centre_x + width / 2),
            round(centre_y + height * 0.55),
        )
    )
    photo = crop.resize((102, 126), Image.Resampling.LANCZOS)
    if blur:
        photo = photo.filter(ImageFilter.GaussianBlur(blur))
    return jpeg(photo, quality)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what",
        nargs="?",
        default="door",
        choices=("door", "timings", "detection", "quality", "all"),
    )
    parser.add_argument("--rounds", type=int, default=10, help="repetitions per stage and photo")
    parser.add_argument(
        "--gallery",
        type=int,
        default=30_000,
        help="gallery size whose search counts in the door's total (default 30,000)",
    )
    add_load_flag(parser)
    args = parser.parse_args()
    if args.what in ("door", "all"):
        check_load("door stages", args.force)
        run_door(args.rounds, args.gallery, args.force)
    if args.what in ("timings", "all"):
        check_load("timings", args.force)
        run_timings(args.rounds)
    if args.what in ("detection", "all"):
        check_load("detection", args.force)
        run_detection()
    if args.what in ("quality", "all"):
        check_load("quality", args.force)
        run_quality()


if __name__ == "__main__":
    main()
