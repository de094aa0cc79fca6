"""The face engine on real photos (face_recognition 1.3.0's test images, fetched and cached).

The photos are fetched by ``python -m tests.fetch_test_data`` (``make test`` runs it); without
them these tests fail and say so, they are never skipped.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from gatekeeper import faces
from gatekeeper.faces import (
    ENROLMENT_THRESHOLDS,
    ID_PHOTO_THRESHOLDS,
    PERSON_ID_TOLERANCE,
    TEMPLATE_BYTES,
    EnrolmentResult,
    FaceQualityReason,
    ImageError,
    ImageProblem,
    PhotoRole,
    TemplateError,
    assess_enrolment_photo,
    face_distance,
    match_id_photo,
)
from gatekeeper.gallery import Gallery
from tests import fetch_test_data
from tests.fetch_test_data import FACE_PHOTOS as PHOTOS
from tests.gatekeeper import face_images as make
from tests.support.imports import FACE_MODELS, loaded_after


@pytest.fixture(scope="module")
def enrolled() -> dict[str, EnrolmentResult]:
    """The enrolment result of each full photo, computed once for the module."""
    return {name: assess_enrolment_photo(make.photo_bytes(name)) for name in PHOTOS}


@pytest.fixture(scope="module")
def obama() -> Image.Image:
    return make.upright_rgb("obama.jpg")


def assert_rejected(result: EnrolmentResult, reason: FaceQualityReason) -> None:
    assert result.reason == reason
    assert not result.ok
    assert result.template is None


# --- test data --------------------------------------------------------------------------------


def test_the_real_photos_are_cached() -> None:
    for name in fetch_test_data.IMAGE_NAMES:
        assert fetch_test_data.test_image(name).stat().st_size > 10_000, name


def test_a_missing_photo_says_how_to_fetch_it() -> None:
    with pytest.raises(fetch_test_data.TestDataMissing, match=r"python -m tests\.fetch_test_data"):
        fetch_test_data.test_image("no_such_photo.jpg")


def test_extraction_takes_only_the_test_images(tmp_path: Path) -> None:
    tarball = tmp_path / "face_recognition-1.3.0.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name, data in (
            ("face_recognition-1.3.0/tests/test_images/a.jpg", b"jpeg"),
            ("face_recognition-1.3.0/tests/test_images/sub/b.jpg", b"nested"),
            ("face_recognition-1.3.0/setup.py", b"code"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    cache = tmp_path / "cache"
    assert fetch_test_data.extract_images(tarball, cache) == ["a.jpg"]
    assert sorted(p.name for p in cache.iterdir()) == ["a.jpg"]


def test_a_failing_pip_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_pip(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        assert command[:3] == [sys.executable, "-m", "pip"]
        return subprocess.CompletedProcess(command, 1, "", "no network")

    monkeypatch.setattr(fetch_test_data.subprocess, "run", failing_pip)
    with pytest.raises(RuntimeError, match=r"pip download face_recognition==1\.3\.0 failed"):
        fetch_test_data.fetch(tmp_path / "empty-cache")


# --- enrolment: accepted photos and matching ---------------------------------------------------


def test_enrolment_from_obama_gives_a_template(enrolled: dict[str, EnrolmentResult]) -> None:
    result = enrolled["obama.jpg"]
    assert result.ok and result.reason is None
    assert result.face_count == 1
    assert result.template is not None
    assert result.template.shape == (128,) and result.template.dtype == np.float32
    assert not result.template.flags.writeable
    m = result.measurements
    assert m is not None
    assert (m.image_width, m.image_height) == (910, 1137)
    assert m.eye_distance_px > 3 * ENROLMENT_THRESHOLDS.min_eye_distance_px
    assert m.sharpness > 2 * ENROLMENT_THRESHOLDS.min_sharpness
    assert 250 < m.face_width_px < 320 and 0 < m.brightness < 255


def test_every_full_photo_enrols(enrolled: dict[str, EnrolmentResult]) -> None:
    assert {name: result.reason for name, result in enrolled.items()} == dict.fromkeys(PHOTOS)


def test_the_same_person_is_within_tolerance_and_another_is_not(
    enrolled: dict[str, EnrolmentResult],
) -> None:
    obama = enrolled["obama.jpg"].template
    for other in ("obama2.jpg", "obama3.jpg"):
        assert face_distance(obama, enrolled[other].template) < PERSON_ID_TOLERANCE - 0.1, other
    assert face_distance(obama, enrolled["biden.jpg"].template) > PERSON_ID_TOLERANCE + 0.2


def test_templates_are_deterministic() -> None:
    """One jitter: the same photo always gives the same template."""
    first = assess_enrolment_photo(make.photo_bytes("obama2.jpg")).template
    second = assess_enrolment_photo(make.photo_bytes("obama2.jpg")).template
    assert np.array_equal(first, second)


def test_a_mildly_blurred_photo_still_enrols(obama: Image.Image) -> None:
    assert assess_enrolment_photo(make.blurred(obama, 1)).ok


# --- enrolment: rejections ---------------------------------------------------------------------


def test_a_blank_image_has_no_face() -> None:
    result = assess_enrolment_photo(make.blank())
    assert_rejected(result, FaceQualityReason.NO_FACE)
    assert result.face_count == 0 and result.measurements is None


def test_a_background_crop_has_no_face(obama: Image.Image) -> None:
    suit = make.encode(obama.crop((0, 600, obama.width, obama.height)))
    assert_rejected(assess_enrolment_photo(suit), FaceQualityReason.NO_FACE)


def test_two_faces_side_by_side_are_refused(obama: Image.Image) -> None:
    pair = make.side_by_side(obama, make.upright_rgb("biden.jpg"))
    result = assess_enrolment_photo(pair)
    assert_rejected(result, FaceQualityReason.MULTIPLE_FACES)
    assert result.face_count == 2


def test_a_tiny_face_is_too_small(obama: Image.Image) -> None:
    result = assess_enrolment_photo(make.scaled(obama, 0.2))
    assert_rejected(result, FaceQualityReason.FACE_TOO_SMALL)
    assert result.measurements is not None
    assert result.measurements.eye_distance_px < ENROLMENT_THRESHOLDS.min_eye_distance_px


def test_a_blurred_face_is_too_blurry(obama: Image.Image) -> None:
    result = assess_enrolment_photo(make.blurred(obama, 4))
    assert_rejected(result, FaceQualityReason.TOO_BLURRY)
    assert result.measurements is not None
    assert result.measurements.sharpness < ENROLMENT_THRESHOLDS.min_sharpness


def test_darkness_is_not_mistaken_for_blur(obama: Image.Image) -> None:
    dark = make.encode(Image.eval(obama, lambda value: value * 3 // 10))
    result = assess_enrolment_photo(dark)
    assert result.ok
    assert result.measurements is not None and result.measurements.brightness < 60


# --- what real uploads look like ---------------------------------------------------------------


def test_exif_rotation_is_applied(obama: Image.Image, enrolled: dict[str, EnrolmentResult]) -> None:
    data = make.exif_rotated(obama)
    assert faces.load_image(data).shape == (obama.height, obama.width, 3)
    result = assess_enrolment_photo(data)
    assert result.ok
    assert face_distance(result.template, enrolled["obama.jpg"].template) < 0.1
    # Without the tag the same pixels show a face lying on its side: the detector finds none.
    assert_rejected(
        assess_enrolment_photo(make.exif_rotated(obama, with_tag=False)), FaceQualityReason.NO_FACE
    )


def test_png_with_alpha_enrols(obama: Image.Image, enrolled: dict[str, EnrolmentResult]) -> None:
    rgba = assess_enrolment_photo(make.photo_bytes("32bit.png"))  # the sdist's RGBA obama2
    assert rgba.ok
    assert face_distance(rgba.template, enrolled["obama2.jpg"].template) < 0.1
    bordered = make.with_transparent_border(obama)
    image = faces.load_image(bordered)
    assert image[0, 0].tolist() == [255, 255, 255]  # transparent margin flattened onto white
    assert assess_enrolment_photo(bordered).ok


def test_grayscale_enrols(obama: Image.Image, enrolled: dict[str, EnrolmentResult]) -> None:
    result = assess_enrolment_photo(make.encode(obama.convert("L")))
    assert result.ok
    assert face_distance(result.template, enrolled["obama.jpg"].template) < 0.25


def test_16bit_grayscale_is_scaled_not_clipped(obama: Image.Image) -> None:
    data = make.grey_16bit_png(obama)
    image = faces.load_image(data)
    assert image.dtype == np.uint8 and image.shape == (obama.height, obama.width, 3)
    expected = np.asarray(obama.convert("L"), dtype=np.float64)
    assert abs(image[..., 0].mean() - expected.mean()) < 1.0  # Pillow's convert("L") gives ~255
    assert assess_enrolment_photo(data).ok


def test_images_come_back_rgb_not_bgr() -> None:
    red = Image.new("RGB", (8, 8), (255, 0, 0))
    for fmt in ("PNG", "JPEG"):
        pixel = faces.load_image(make.encode(red, fmt))[4, 4]
        assert pixel[0] > 200 and pixel[2] < 50, fmt


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        pytest.param(b"", ImageProblem.EMPTY, id="empty"),
        pytest.param(
            np.random.default_rng(1).bytes(4096), ImageProblem.UNSUPPORTED_FORMAT, id="random"
        ),
        pytest.param(b"GIF89a" + b"\x00" * 64, ImageProblem.UNSUPPORTED_FORMAT, id="gif"),
        pytest.param(
            make.png_header_claiming(50_000, 50_000), ImageProblem.TOO_MANY_PIXELS, id="bomb"
        ),
        pytest.param(
            make.png_header_claiming(5000, 10), ImageProblem.TOO_MANY_PIXELS, id="over-4096"
        ),
        pytest.param(b"\xff" * (8 * 1024 * 1024 + 1), ImageProblem.TOO_MANY_BYTES, id="over-8MiB"),
    ],
)
def test_bad_uploads_are_image_errors(data: bytes, problem: ImageProblem) -> None:
    start = time.perf_counter()
    with pytest.raises(ImageError) as caught:
        assess_enrolment_photo(data)
    assert caught.value.reason == problem
    assert time.perf_counter() - start < 1.0  # refused from the header, never decoded


def test_a_truncated_jpeg_is_an_image_error() -> None:
    data = make.photo_bytes("obama.jpg")
    for cut in (len(data) // 2, 600, 3):
        with pytest.raises(ImageError) as caught:
            faces.load_image(data[:cut])
        assert caught.value.reason == ImageProblem.UNREADABLE, cut


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_a_cut_frame_is_refused_even_when_pillow_is_told_to_load_truncated_images(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``face_recognition`` sets Pillow's global on import; Pillow would then pad a cut frame
    with grey and the engine would describe half a face. Whole frames, padded or not, load."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = make.encode(make.upright_rgb("obama.jpg"), fmt)
    assert faces.load_image(data).shape[:2] == make.upright_rgb("obama.jpg").size[::-1]
    for cut in (len(data) // 2, len(data) - 2):
        with pytest.raises(ImageError) as caught:
            faces.load_image(data[:cut])
        assert caught.value.reason == ImageProblem.UNREADABLE, (fmt, cut)
    if fmt == "JPEG":  # padding, or bytes a camera appends after the end marker
        assert faces.load_image(data + b"\x00" * 64).shape[2] == 3
        assert faces.load_image(data + b"\r\n").shape[2] == 3


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_a_stored_picture_cut_short_is_refused_by_its_header_check(fmt: str) -> None:
    """``check_image`` decodes no pixels, so it looks for the file's end marker instead."""
    data = make.encode(make.upright_rgb("obama.jpg"), fmt)
    assert faces.check_image(data) == make.upright_rgb("obama.jpg").size
    for cut in (len(data) // 2, len(data) - 2):
        with pytest.raises(ImageError) as caught:
            faces.check_image(data[:cut])
        assert caught.value.reason == ImageProblem.UNREADABLE, (fmt, cut)
    if fmt == "JPEG":  # some cameras pad after the end marker
        assert faces.check_image(data + b"\x00" * 64) == make.upright_rgb("obama.jpg").size


# --- person-ID match -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def id_photo(obama: Image.Image, enrolled: dict[str, EnrolmentResult]) -> bytes:
    """obama.jpg as an ID card chip photo: 102x126 px, JPEG quality 75."""
    box = enrolled["obama.jpg"].measurements.box
    return make.id_card_photo(obama, (box.left, box.top, box.right, box.bottom))


def test_the_id_photo_is_small_enough_to_fail_enrolment(id_photo: bytes) -> None:
    assert faces.load_image(id_photo).shape == (126, 102, 3)
    result = assess_enrolment_photo(id_photo)
    assert_rejected(result, FaceQualityReason.FACE_TOO_SMALL)
    assert (
        ID_PHOTO_THRESHOLDS.min_eye_distance_px
        < result.measurements.eye_distance_px
        < ENROLMENT_THRESHOLDS.min_eye_distance_px
    )


def test_id_photo_matches_the_same_person(id_photo: bytes) -> None:
    result = match_id_photo(id_photo, make.photo_bytes("obama2.jpg"))
    assert result.match
    assert result.distance is not None and result.distance < PERSON_ID_TOLERANCE
    assert result.tolerance == PERSON_ID_TOLERANCE
    assert result.reason is None and result.failed_photo is None
    assert result.id_measurements.image_width == 102


def test_id_photo_does_not_match_another_person(id_photo: bytes) -> None:
    result = match_id_photo(id_photo, make.photo_bytes("biden.jpg"))
    assert not result.match
    assert result.distance is not None and result.distance > PERSON_ID_TOLERANCE + 0.15


def test_id_match_says_which_photo_failed(id_photo: bytes) -> None:
    result = match_id_photo(make.blank((102, 126)), make.photo_bytes("obama2.jpg"))
    assert (result.match, result.distance) == (False, None)
    assert (result.reason, result.failed_photo) == (FaceQualityReason.NO_FACE, PhotoRole.ID_PHOTO)
    result = match_id_photo(id_photo, id_photo)  # the live photo is held to enrolment quality
    assert (result.reason, result.failed_photo) == (
        FaceQualityReason.FACE_TOO_SMALL,
        PhotoRole.LIVE_PHOTO,
    )
    with pytest.raises(ImageError) as caught:
        match_id_photo(id_photo, b"not an image")
    assert caught.value.photo == PhotoRole.LIVE_PHOTO


# --- templates -------------------------------------------------------------------------------


def test_template_bytes_round_trip(enrolled: dict[str, EnrolmentResult]) -> None:
    template = enrolled["obama.jpg"].template
    data = faces.template_to_bytes(template)
    assert len(data) == TEMPLATE_BYTES == 512
    assert np.array_equal(np.frombuffer(data, dtype="<f4"), template)  # little-endian float32
    assert np.array_equal(faces.template_from_bytes(data), template)


@pytest.mark.parametrize("length", [0, 511, 513, 1024])
def test_template_bytes_of_the_wrong_length_are_refused(length: int) -> None:
    with pytest.raises(TemplateError):
        faces.template_from_bytes(b"\x00" * length)


def test_malformed_templates_are_refused() -> None:
    with pytest.raises(TemplateError):
        faces.template_to_bytes(np.zeros(127, dtype=np.float32))
    with pytest.raises(TemplateError):
        faces.template_from_bytes(np.full(128, np.nan, dtype="<f4").tobytes())
    with pytest.raises(TemplateError):
        face_distance(np.zeros(128), np.zeros((2, 128)))


def test_distances_are_face_recognitions(enrolled: dict[str, EnrolmentResult]) -> None:
    """The door's 1:N search (``gatekeeper.gallery``, what ``server.access.face`` calls) and
    the person-ID match's ``face_distance`` measure what ``face_recognition.face_distance`` does."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # face_recognition_models: pkg_resources
        warnings.simplefilter("ignore", DeprecationWarning)
        import face_recognition
    person = {name: "biden" if name == "biden.jpg" else "obama" for name in PHOTOS}
    for probe_name in PHOTOS:
        probe = enrolled[probe_name].template
        others = [name for name in PHOTOS if name != probe_name]
        expected = dict(
            zip(
                others,
                face_recognition.face_distance(
                    np.stack([enrolled[name].template for name in others]), probe
                ),
                strict=True,
            )
        )
        gallery = Gallery()
        for name in others:
            gallery.add(name, person[name], enrolled[name].template)
        match = gallery.search(probe, tolerance=10.0, margin=0.0)
        closest = min(others, key=expected.__getitem__)
        assert match.template_id == closest and match.person_id == person[closest]
        assert match.distance == pytest.approx(expected[closest], abs=1e-4)
        rivals = [expected[name] for name in others if person[name] != person[closest]]
        if rivals:
            assert match.second_distance == pytest.approx(min(rivals), abs=1e-4)
        else:
            assert match.second_distance is None
        for name in others:
            pair = face_distance(enrolled[name].template, probe)
            assert pair == pytest.approx(expected[name], abs=1e-5)
        assert face_distance(probe, probe) == 0.0


# --- the engine: loaded once, safe across threads --------------------------------------------


def test_importing_the_module_loads_nothing() -> None:
    assert loaded_after("gatekeeper.faces") == dict.fromkeys(FACE_MODELS, False)


def test_the_engine_is_created_once(monkeypatch: pytest.MonkeyPatch) -> None:
    created = []

    class CountingEngine:
        def __init__(self) -> None:
            time.sleep(0.05)  # widen the window in which a racing thread could create another
            created.append(self)

    monkeypatch.setattr(faces, "_engine", None)
    monkeypatch.setattr(faces, "FaceEngine", CountingEngine)
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(faces.engine())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(created) == 1
    assert all(engine is created[0] for engine in seen)


def test_models_are_not_reloaded_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    import dlib

    engine = faces.engine()
    loads = []
    for loader in ("shape_predictor", "face_recognition_model_v1", "get_frontal_face_detector"):
        original = getattr(dlib, loader)
        monkeypatch.setattr(
            dlib, loader, lambda *args, _original=original: loads.append(args) or _original(*args)
        )
    assess_enrolment_photo(make.photo_bytes("obama2.jpg"))
    assess_enrolment_photo(make.photo_bytes("biden.jpg"))
    assert faces.engine() is engine
    assert loads == []


def test_detection_is_right_under_concurrency() -> None:
    """dlib's detector is not thread-safe; each concurrent caller gets its own."""
    engine = faces.engine()
    images = [faces.load_image(make.photo_bytes(name)) for name in PHOTOS]
    expected = [engine.detect(image, max_side=320) for image in images]
    mismatches: list[int] = []
    errors: list[BaseException] = []
    finished: list[int] = []

    def work(offset: int) -> None:
        try:
            for step in range(4):
                index = (offset + step) % len(images)
                if engine.detect(images[index], max_side=320) != expected[index]:
                    mismatches.append(index)
            finished.append(offset)
        except BaseException as error:  # a thread's exception would otherwise only be printed
            errors.append(error)

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(finished) == [0, 1, 2, 3]
    assert mismatches == []
    assert 1 <= engine.detectors_created <= 1 + len(threads)


def test_encode_finds_the_face_itself_or_uses_a_given_box(
    enrolled: dict[str, EnrolmentResult],
) -> None:
    engine = faces.engine()
    image = faces.load_image(make.photo_bytes("obama.jpg"))
    found = engine.encode(image)
    assert np.array_equal(found.template, enrolled["obama.jpg"].template)
    assert len(found.face.landmarks) == 5
    boxed = engine.encode(image, enrolled["obama.jpg"].measurements.box)
    assert np.array_equal(boxed.template, found.template)
    chip = engine.face_chip(image, found.face, size=150, padding=0.25)  # what the network sees
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    with pytest.raises(faces.FaceNotFound):
        engine.encode(faces.load_image(make.blank()))
    # A view (a crop, a channel flip) is accepted; a wrong dtype or layout is refused clearly.
    crop = image[100:700, 250:750]
    assert engine.detect(crop)[0].box.width > 200
    with pytest.raises(ValueError, match="uint8 RGB"):
        engine.detect(image.astype(np.float32))
    with pytest.raises(ValueError, match="uint8 RGB"):
        engine.detect(image[..., 0])


# --- the door's detection copy ---------------------------------------------------------------


DOOR_FRAMES = [
    (name, width, size)
    for name in PHOTOS
    for width, size in ((160, (1280, 720)), (340, (1280, 720)), (160, (1920, 1080)))
]


@pytest.fixture(scope="module")
def door_frames() -> dict[tuple[str, int, tuple[int, int]], np.ndarray]:
    return {key: make.door_frame(*key) for key in DOOR_FRAMES}


def test_the_reduced_door_copy_keeps_the_probes_of_the_bilinear_copy(
    door_frames: dict[tuple[str, int, tuple[int, int]], np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The door's detection copy is reduced by a whole factor before its bilinear resize (faster);
    the probes it gives are those of the bilinear copy: the same verdict, the same landmarks
    within 2 px, and templates within 0.06 of each other (a 4:1 box reduce moved one by 0.09)."""
    assert faces.DOOR_REDUCING_GAP is not None
    now = {key: faces.probe_face(frame) for key, frame in door_frames.items()}
    monkeypatch.setattr(faces, "DOOR_REDUCING_GAP", None)
    for key, frame in door_frames.items():
        before = faces.probe_face(frame)
        assert (before.reason, before.face_count) == (now[key].reason, now[key].face_count), key
        assert before.ok, key
        moved = np.abs(np.subtract(before.face.landmarks, now[key].face.landmarks)).max()
        assert moved <= 2, key
        assert face_distance(before.template, now[key].template) < 0.06, key
