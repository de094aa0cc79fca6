"""Depth liveness on synthetic depth maps aligned with the real test photos' landmarks.

The landmarks come from the real photos (face_recognition 1.3.0's test images, fetched by
``python -m tests.fetch_test_data``), found by the face engine and dlib's 68-point model, then
placed where a face at the test's distance appears in a 1280x720 door frame. The depth maps are
rendered by :mod:`tests.support.depthmaps` (docs/liveness.md describes the model) with small seeds;
``bench/liveness_errors.py`` measures the error rates with other seeds.
"""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image, ImageFile

from gatekeeper import faces, liveness
from gatekeeper.liveness import (
    DepthError,
    DepthProblem,
    DepthThresholds,
    Landmarks,
    LivenessReason,
    LivenessResult,
    check_depth,
    load_depth,
)
from tests.fetch_test_data import FACE_PHOTOS as PHOTOS
from tests.fetch_test_data import test_image as photo_path
from tests.gatekeeper.face_images import GREY, png_header_claiming
from tests.support import depthmaps
from tests.support.depthmaps import BendAxis, Scene
from tests.support.imports import FACE_MODELS, loaded_after

FRAME = (1280, 720)
DEPTH_SIZES = ((640, 360), (320, 180))
SHEET_REASONS = {LivenessReason.FLAT_SURFACE, LivenessReason.CURVED_SHEET}


@pytest.fixture(scope="module")
def photo_landmarks() -> dict[str, Landmarks]:
    """The 68 landmarks of each real photo, found once for the module."""
    return depthmaps.photo_landmarks()


def door_scene(
    landmarks: Landmarks, distance_mm: float, depth_size: tuple[int, int] = (640, 360)
) -> Scene:
    """The photo's face placed as a face at ``distance_mm`` appears in a 1280x720 frame."""
    return Scene(depthmaps.place_face(landmarks, distance_mm), FRAME, depth_size)


def judge(scene: Scene, depth: np.ndarray) -> LivenessResult:
    return check_depth(depth, scene.image_size, scene.landmarks)


def assert_not_live(result: LivenessResult, reasons: set[LivenessReason]) -> None:
    assert result.checked
    assert not result.live
    assert result.score < 0.5
    assert result.method == "depth"
    assert result.reason in reasons, result.measurements


def png16(depth: np.ndarray) -> bytes:
    return depthmaps.to_png16(depth)


def png_of(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def grey16_png_claiming(width: int, height: int) -> bytes:
    """A tiny 16-bit grayscale PNG whose header claims ``width`` x ``height`` pixels."""
    return png_header_claiming(width, height, bit_depth=16, colour_type=GREY)


# --- live faces -------------------------------------------------------------------------------


@pytest.mark.parametrize("depth_size", DEPTH_SIZES)
@pytest.mark.parametrize("distance", [300, 500, 800, 1200])
@pytest.mark.parametrize("name", PHOTOS)
def test_live_faces_pass(
    photo_landmarks: dict[str, Landmarks],
    name: str,
    distance: int,
    depth_size: tuple[int, int],
) -> None:
    scene = door_scene(photo_landmarks[name], distance, depth_size)
    for seed in range(3):
        rng = np.random.default_rng([seed, distance, depth_size[0]])
        result = judge(scene, depthmaps.live_face(scene, distance, rng))
        assert result.live, result.measurements
        assert result.reason is None
        assert result.score >= 0.5
        assert abs(result.measurements["nose_mm"] - distance) < 15
        assert 12 <= result.measurements["relief_mm"] <= 70


def test_live_faces_pass_turned_and_noisy(photo_landmarks: dict[str, Landmarks]) -> None:
    for seed, (yaw, pitch) in enumerate([(-15, 0), (15, 10), (0, -15), (10, 15)]):
        scene = door_scene(photo_landmarks[PHOTOS[seed]], 700)
        rng = np.random.default_rng(seed)
        depth = depthmaps.live_face(
            scene, 700, rng, yaw_deg=yaw, pitch_deg=pitch, noise_scale=2.0, hole_fraction=0.15
        )
        assert judge(scene, depth).live


def test_a_hole_over_the_nose_is_too_few_pixels_not_a_verdict(
    photo_landmarks: dict[str, Landmarks],
) -> None:
    scene = door_scene(photo_landmarks["obama.jpg"], 600)
    depth = depthmaps.live_face(scene, 600, np.random.default_rng(0), hole_fraction=0.05)
    nose = liveness.to_depth_pixels(scene.landmarks.array(), FRAME, depth.shape)[30]
    x, y = np.rint(nose).astype(int)
    depth[y - 12 : y + 13, x - 12 : x + 13] = 0
    result = judge(scene, depth)
    assert_not_live(result, {LivenessReason.TOO_FEW_DEPTH_PIXELS})
    assert result.measurements["nose_mm"] is None


# --- attacks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tilt", [0, 20, 40])
@pytest.mark.parametrize("distance", [300, 700, 1200])
def test_flat_photos_fail_at_any_distance_and_tilt(
    photo_landmarks: dict[str, Landmarks], distance: int, tilt: int
) -> None:
    for index, (tilt_x, tilt_y) in enumerate([(tilt, 0), (0, tilt), (-tilt, -tilt)]):
        name = PHOTOS[index]
        scene = door_scene(photo_landmarks[name], distance, DEPTH_SIZES[index % 2])
        rng = np.random.default_rng([distance, tilt, index])
        depth = depthmaps.flat_photo(
            scene, distance, rng, tilt_x_deg=tilt_x, tilt_y_deg=tilt_y, hole_fraction=0.05
        )
        result = judge(scene, depth)
        assert_not_live(result, {LivenessReason.FLAT_SURFACE})
        assert abs(result.measurements["relief_mm"]) < 6


def test_a_tilted_photo_reports_its_tilt(photo_landmarks: dict[str, Landmarks]) -> None:
    scene = door_scene(photo_landmarks["obama.jpg"], 600)
    rng = np.random.default_rng(1)
    result = judge(scene, depthmaps.flat_photo(scene, 600, rng, tilt_y_deg=30, hole_fraction=0))
    assert result.reason == LivenessReason.FLAT_SURFACE
    # The tilt is reported with a 90 mm eye-corner ruler; the rendered face's is 86-98 mm.
    assert 22 <= abs(result.measurements["tilt_y_deg"]) <= 38
    assert abs(result.measurements["tilt_x_deg"]) <= 6


@pytest.mark.parametrize("axis", list(BendAxis))
@pytest.mark.parametrize("radius", [80, 120, 200, 300])
def test_bent_photos_fail(
    photo_landmarks: dict[str, Landmarks], radius: int, axis: BendAxis
) -> None:
    for index, distance in enumerate([400, 900]):
        scene = door_scene(photo_landmarks[PHOTOS[index + 1]], distance, DEPTH_SIZES[index])
        rng = np.random.default_rng([radius, index])
        depth = depthmaps.bent_photo(
            scene, distance, rng, radius_mm=radius, axis=axis, hole_fraction=0.05
        )
        result = judge(scene, depth)
        # A photo bent around 300 mm is nearly flat: either answer names a sheet.
        expected = SHEET_REASONS if radius >= 300 else {LivenessReason.CURVED_SHEET}
        assert_not_live(result, expected)


def test_a_photo_bent_away_from_the_camera_fails(photo_landmarks: dict[str, Landmarks]) -> None:
    scene = door_scene(photo_landmarks["obama.jpg"], 600)
    for axis in BendAxis:
        rng = np.random.default_rng(5)
        depth = depthmaps.bent_photo(scene, 600, rng, radius_mm=120, axis=axis, convex=False)
        assert_not_live(judge(scene, depth), {*SHEET_REASONS, LivenessReason.NO_RELIEF})


@pytest.mark.parametrize("axis", list(BendAxis))
@pytest.mark.parametrize("fold", [15, 30, 40])
def test_folded_photos_fail(
    photo_landmarks: dict[str, Landmarks], fold: int, axis: BendAxis
) -> None:
    # A fold through the nose gives a photo a "nose" in front of the corner plane; it is a
    # ridge, though, not a peak.
    for index, distance in enumerate([450, 1000]):
        scene = door_scene(photo_landmarks[PHOTOS[index * 2]], distance, DEPTH_SIZES[index])
        rng = np.random.default_rng([fold, index])
        depth = depthmaps.folded_photo(
            scene, distance, rng, fold_deg=fold, axis=axis, hole_fraction=0.05
        )
        result = judge(scene, depth)
        assert_not_live(result, SHEET_REASONS)
        assert result.measurements["peak_mm"] < 4


@pytest.mark.parametrize("tilt", [0, 25])
@pytest.mark.parametrize("distance", [300, 600, 1000])
def test_screens_fail(photo_landmarks: dict[str, Landmarks], distance: int, tilt: int) -> None:
    for index, name in enumerate(PHOTOS):
        scene = door_scene(photo_landmarks[name], distance, DEPTH_SIZES[index % 2])
        rng = np.random.default_rng([distance, tilt, index])
        depth = depthmaps.screen(
            scene, distance, rng, tilt_x_deg=tilt * (index % 2), tilt_y_deg=tilt, hole_fraction=0.05
        )
        assert_not_live(judge(scene, depth), {LivenessReason.FLAT_SURFACE})


# --- distance -----------------------------------------------------------------------------------


def test_too_close_and_too_far(photo_landmarks: dict[str, Landmarks]) -> None:
    rng = np.random.default_rng(3)
    close = door_scene(photo_landmarks["obama.jpg"], 180)
    assert_not_live(judge(close, depthmaps.live_face(close, 150, rng)), {LivenessReason.TOO_CLOSE})
    far = door_scene(photo_landmarks["biden.jpg"], 1800, (320, 180))
    assert_not_live(judge(far, depthmaps.live_face(far, 1800, rng)), {LivenessReason.TOO_FAR})


def test_thresholds_can_be_tightened(photo_landmarks: dict[str, Landmarks]) -> None:
    scene = door_scene(photo_landmarks["obama2.jpg"], 1000)
    depth = depthmaps.live_face(scene, 1000, np.random.default_rng(4))
    assert judge(scene, depth).live
    near_only = DepthThresholds(max_distance_mm=800.0)
    result = check_depth(depth, FRAME, scene.landmarks, near_only)
    assert result.reason == LivenessReason.TOO_FAR


# --- garbage depth: a DepthError or a "not live", never an uncaught exception -------------------


def test_depth_png_round_trip(photo_landmarks: dict[str, Landmarks]) -> None:
    scene = door_scene(photo_landmarks["obama.jpg"], 600)
    depth = depthmaps.live_face(scene, 600, np.random.default_rng(0))
    loaded = load_depth(png16(depth), 1280 / 720)
    assert loaded.dtype == np.uint16
    assert np.array_equal(loaded, depth)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"", DepthProblem.EMPTY, id="empty"),
        pytest.param(b"\x00" * (8 * 1024 * 1024 + 1), DepthProblem.TOO_LARGE, id="over-8MiB"),
        pytest.param(np.random.default_rng(0).bytes(5000), DepthProblem.NOT_PNG, id="random"),
        pytest.param(
            b"\x89PNG\r\n\x1a\n" + np.random.default_rng(1).bytes(500),
            DepthProblem.UNREADABLE,
            id="random-after-png-signature",
        ),
        pytest.param(grey16_png_claiming(50000, 50000), DepthProblem.TOO_LARGE, id="bomb"),
        pytest.param(grey16_png_claiming(8000, 4500), DepthProblem.TOO_LARGE, id="over-4096px"),
        pytest.param(grey16_png_claiming(8, 8), DepthProblem.TOO_SMALL, id="8x8"),
        pytest.param(
            png_of(Image.new("L", (320, 180), 128)), DepthProblem.NOT_16_BIT, id="8-bit-grey"
        ),
        pytest.param(
            png_of(Image.new("RGB", (320, 180), (1, 2, 3))), DepthProblem.NOT_16_BIT, id="rgb"
        ),
        pytest.param(png_of(Image.new("RGBA", (320, 180))), DepthProblem.NOT_16_BIT, id="rgba"),
        pytest.param(png_of(Image.new("P", (320, 180))), DepthProblem.NOT_16_BIT, id="palette"),
        pytest.param(
            png16(np.full((480, 640), 700, np.uint16)), DepthProblem.WRONG_ASPECT, id="4:3"
        ),
        pytest.param(
            png16(np.full((180, 330), 700, np.uint16)), DepthProblem.WRONG_ASPECT, id="3%-off"
        ),
        pytest.param(
            png16(np.random.default_rng(2).integers(500, 900, (360, 640)))[:20000],
            DepthProblem.UNREADABLE,
            id="truncated",
        ),
    ],
)
def test_unusable_depth_uploads_raise_depth_error(data: bytes, reason: DepthProblem) -> None:
    with pytest.raises(DepthError) as caught:
        load_depth(data, 1280 / 720)
    assert caught.value.reason == reason
    assert caught.value.detail


def test_a_truncated_depth_map_with_real_content_is_unreadable(
    photo_landmarks: dict[str, Landmarks],
) -> None:
    scene = door_scene(photo_landmarks["obama.jpg"], 600)
    data = png16(depthmaps.live_face(scene, 600, np.random.default_rng(0)))
    # (A file cut only in its trailer, after the last pixel row, still decodes whole.)
    for cut in (100, len(data) // 3, len(data) // 2, len(data) * 3 // 4):
        with pytest.raises(DepthError) as caught:
            load_depth(data[:cut], 1280 / 720)
        assert caught.value.reason == DepthProblem.UNREADABLE


def test_a_cut_depth_map_is_unreadable_even_when_pillow_is_told_to_pad(
    photo_landmarks: dict[str, Landmarks], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``face_recognition`` sets Pillow's LOAD_TRUNCATED_IMAGES on import; a cut map still fails."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    scene = door_scene(photo_landmarks["obama.jpg"], 600)
    data = png16(depthmaps.live_face(scene, 600, np.random.default_rng(0)))
    for cut in (len(data) // 2, len(data) - 12):  # a cut in the pixels; only IEND missing
        with pytest.raises(DepthError) as caught:
            load_depth(data[:cut], 1280 / 720)
        assert caught.value.reason == DepthProblem.UNREADABLE
    assert load_depth(data, 1280 / 720).shape == (360, 640)


def test_an_aspect_within_two_percent_is_accepted() -> None:
    depth = load_depth(png16(np.full((180, 323), 700, np.uint16)), 1280 / 720)
    assert depth.shape == (180, 323)


@pytest.mark.parametrize(
    ("depth", "reason"),
    [
        pytest.param(np.zeros((360, 640), np.uint16), LivenessReason.TOO_FEW_DEPTH_PIXELS, id="0"),
        pytest.param(np.full((180, 320), 65535, np.uint16), LivenessReason.TOO_FAR, id="max"),
        pytest.param(np.full((180, 320), 100, np.uint16), LivenessReason.TOO_CLOSE, id="100mm"),
    ],
)
def test_depth_maps_without_a_face_are_not_live(
    photo_landmarks: dict[str, Landmarks], depth: np.ndarray, reason: LivenessReason
) -> None:
    scene = door_scene(photo_landmarks["obama.jpg"], 600)
    loaded = load_depth(png16(depth), 1280 / 720)
    assert_not_live(judge(scene, loaded), {reason})


def test_noise_and_sparse_maps_are_not_live(photo_landmarks: dict[str, Landmarks]) -> None:
    scene = door_scene(photo_landmarks["obama3.jpg"], 700)
    rng = np.random.default_rng(9)
    noise = rng.integers(0, 65536, (360, 640)).astype(np.uint16)
    assert not judge(scene, noise).live
    near_noise = rng.integers(600, 800, (360, 640)).astype(np.uint16)
    assert not judge(scene, near_noise).live
    sparse = depthmaps.live_face(scene, 700, rng)
    sparse[rng.random(sparse.shape) < 0.6] = 0
    assert_not_live(judge(scene, sparse), {LivenessReason.TOO_FEW_DEPTH_PIXELS})


def test_float_maps_with_nan_and_inf_do_not_crash(photo_landmarks: dict[str, Landmarks]) -> None:
    scene = door_scene(photo_landmarks["obama.jpg"], 600)
    depth = depthmaps.live_face(scene, 600, np.random.default_rng(2)).astype(np.float64)
    depth[::7, ::5] = np.nan
    depth[::11, ::3] = np.inf
    depth[::13, ::2] = -5
    result = judge(scene, depth)
    assert result.checked
    assert result.live


def test_a_face_outside_the_depth_map_is_too_few_pixels(
    photo_landmarks: dict[str, Landmarks],
) -> None:
    scene = door_scene(photo_landmarks["obama.jpg"], 600)
    depth = depthmaps.live_face(scene, 600, np.random.default_rng(0))
    gone = depthmaps.transformed(scene.landmarks, 1.0, 2000.0, 0.0)
    assert_not_live(check_depth(depth, FRAME, gone), {LivenessReason.TOO_FEW_DEPTH_PIXELS})
    tiny = depthmaps.transformed(scene.landmarks, 0.01, 600.0, 300.0)
    assert_not_live(check_depth(depth, FRAME, tiny), {LivenessReason.TOO_FEW_DEPTH_PIXELS})


def test_check_depth_refuses_a_map_of_another_aspect(
    photo_landmarks: dict[str, Landmarks],
) -> None:
    scene = door_scene(photo_landmarks["obama.jpg"], 600)
    with pytest.raises(DepthError) as caught:
        check_depth(np.full((480, 640), 600, np.uint16), FRAME, scene.landmarks)
    assert caught.value.reason == DepthProblem.WRONG_ASPECT
    with pytest.raises(ValueError, match="2-D"):
        check_depth(np.zeros((360, 640, 3), np.uint16), FRAME, scene.landmarks)


# --- end to end from an RGB frame: detection, 68 landmarks, PNG upload ---------------------------


def door_frame(name: str, distance_mm: float) -> np.ndarray:
    """A 1280x720 frame with the photo pasted so its face is as large as at ``distance_mm``."""
    photo = Image.open(photo_path(name)).convert("RGB")
    image = faces.load_image(photo_path(name).read_bytes())
    box = faces.engine().detect(image)[0].box
    landmarks = liveness.face_landmarks(image, box)
    placed = depthmaps.place_face(landmarks, distance_mm)
    scale = (placed.points[45][0] - placed.points[36][0]) / (
        landmarks.points[45][0] - landmarks.points[36][0]
    )
    small = photo.resize((round(photo.width * scale), round(photo.height * scale)))
    frame = Image.new("RGB", FRAME, (70, 80, 90))
    frame.paste(
        small,
        (
            round(placed.points[30][0] - landmarks.points[30][0] * scale),
            round(placed.points[30][1] - landmarks.points[30][1] * scale),
        ),
    )
    return np.asarray(frame)


@pytest.mark.parametrize(("name", "distance"), [("obama2.jpg", 500), ("biden.jpg", 900)])
def test_assess_depth_from_a_door_frame(name: str, distance: int) -> None:
    frame = door_frame(name, distance)
    box = faces.engine().detect(frame)[0].box
    landmarks = liveness.face_landmarks(frame, box)
    scene = Scene(landmarks, FRAME, (640, 360))
    rng = np.random.default_rng(distance)

    live = liveness.assess_depth(png16(depthmaps.live_face(scene, distance, rng)), frame, box)
    assert live.live
    assert live.to_json() == {"checked": True, "live": True, "score": live.score, "method": "depth"}

    photo = depthmaps.flat_photo(scene, distance, rng, tilt_y_deg=25)
    spoof = liveness.assess_depth(png16(photo), frame, box)
    assert_not_live(spoof, {LivenessReason.FLAT_SURFACE})
    assert spoof.to_json()["reason"] == "flat_surface"

    with pytest.raises(DepthError):
        liveness.assess_depth(png_of(Image.new("L", (320, 180))), frame, box)


def test_not_checked_without_depth() -> None:
    result = LivenessResult.not_checked()
    assert result.to_json() == {
        "checked": False,
        "live": False,
        "score": 0.0,
        "method": "none",
        "reason": "depth_missing",
    }


# --- the generator and the module -----------------------------------------------------------------


def test_generator_is_deterministic_and_sized(photo_landmarks: dict[str, Landmarks]) -> None:
    scene = door_scene(photo_landmarks["obama.jpg"], 800, (320, 180))
    one = depthmaps.live_face(scene, 800, np.random.default_rng(7))
    two = depthmaps.live_face(scene, 800, np.random.default_rng(7))
    other = depthmaps.live_face(scene, 800, np.random.default_rng(8))
    assert one.dtype == np.uint16
    assert one.shape == (180, 320)
    assert np.array_equal(one, two)
    assert not np.array_equal(one, other)
    holes = float((one == 0).mean())
    assert 0.03 <= holes <= 0.6  # holes, plus no reading beyond the head half the time


def test_landmarks_need_68_points() -> None:
    with pytest.raises(ValueError, match="68"):
        Landmarks(points=((0.0, 0.0),) * 5)


def test_importing_the_modules_loads_no_model() -> None:
    assert loaded_after("gatekeeper.liveness, tests.support.depthmaps") == dict.fromkeys(
        FACE_MODELS, False
    )


def test_the_landmark_model_loads_once_across_threads(
    monkeypatch: pytest.MonkeyPatch, photo_landmarks: dict[str, Landmarks]
) -> None:
    import dlib

    loads = []
    real = dlib.shape_predictor

    def counting(path: str) -> object:
        loads.append(path)
        return real(path)

    monkeypatch.setattr(liveness, "_predictor", None)
    monkeypatch.setattr(dlib, "shape_predictor", counting)
    image = faces.load_image(photo_path("obama.jpg").read_bytes())
    box = photo_landmarks["obama.jpg"].box
    assert box is not None
    results: list[Landmarks] = []
    start = threading.Barrier(4)

    def work() -> None:
        start.wait()
        results.append(liveness.face_landmarks(image, box))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1
    assert all(r == photo_landmarks["obama.jpg"] for r in results)
    assert len(results) == 4
