"""Fetch the real face photos the tests use into an ignored cache.

    python -m tests.fetch_test_data

The photos come from the PyPI source distribution of ``face_recognition==1.3.0``,
whose ``tests/test_images/`` folder holds real photographs (not drawings):

- ``obama.jpg``, ``obama2.jpg``, ``obama3.jpg``: three photos of one person;
- ``biden.jpg``: another person;
- ``obama_partial_face.jpg``, ``obama_partial_face2.jpg``: half a face;
- ``32bit.png``: an RGBA PNG (the same photo as ``obama2.jpg``).

They are unpacked into ``.cache/test_images/`` at the repository root (``.cache/`` is
git-ignored). Running the script again does nothing when every image is already there.
Tests call :func:`test_image`, which fails with a clear message when the cache is empty.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache" / "test_images"

SDIST_REQUIREMENT = "face_recognition==1.3.0"
SDIST_IMAGES_DIR = "tests/test_images/"

# What the 1.3.0 sdist carries; the fetch checks every one arrived.
IMAGE_NAMES = (
    "32bit.png",
    "biden.jpg",
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
)
# The photos of one whole face each (two people), in the order the face tests use them.
FACE_PHOTOS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")


class TestDataMissing(RuntimeError):
    """A test image is not in the cache: run ``python -m tests.fetch_test_data``."""

    __test__ = False  # not a pytest test class, despite the name


def test_image(name: str) -> Path:
    """Path of a cached test image; raises :class:`TestDataMissing` saying how to fetch it."""
    path = CACHE_DIR / name
    if not path.is_file():
        raise TestDataMissing(
            f"test image {name!r} is missing from {CACHE_DIR}; "
            "run `python -m tests.fetch_test_data` (make test does it) to download it"
        )
    return path


# pytest would otherwise collect the helper as a test when a module imports it by name.
test_image.__test__ = False  # type: ignore[attr-defined]


def images_present(cache_dir: Path = CACHE_DIR) -> bool:
    """True when every expected image is already unpacked."""
    return all((cache_dir / name).is_file() for name in IMAGE_NAMES)


def download_sdist(dest: Path) -> Path:
    """Download the sdist with pip into ``dest`` and return the tarball's path."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        SDIST_REQUIREMENT,
        "-d",
        str(dest),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"pip download {SDIST_REQUIREMENT} failed (exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
    tarballs = sorted(dest.glob("face_recognition-*.tar.gz"))
    if not tarballs:
        raise RuntimeError(f"pip download succeeded but left no sdist tarball in {dest}")
    return tarballs[0]


def extract_images(tarball: Path, cache_dir: Path = CACHE_DIR) -> list[str]:
    """Copy the files under ``tests/test_images/`` of the tarball into ``cache_dir``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    extracted = []
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive.getmembers():
            _root, _, inner = member.name.partition("/")
            if not member.isfile() or not inner.startswith(SDIST_IMAGES_DIR):
                continue
            name = inner[len(SDIST_IMAGES_DIR) :]
            # Flat names only: nothing from the archive may write outside the cache.
            if not name or "/" in name or name.startswith("."):
                continue
            source = archive.extractfile(member)
            if source is None:
                continue
            target = cache_dir / name
            partial = target.with_suffix(target.suffix + ".part")
            partial.write_bytes(source.read())
            partial.replace(target)  # atomic: a killed run never leaves half an image
            extracted.append(name)
    return sorted(extracted)


def fetch(cache_dir: Path = CACHE_DIR) -> list[str]:
    """Make sure the images are cached; returns the names now present."""
    if images_present(cache_dir):
        return sorted(IMAGE_NAMES)
    with tempfile.TemporaryDirectory(prefix="gk-sdist-") as tmp:
        tarball = download_sdist(Path(tmp))
        extracted = extract_images(tarball, cache_dir)
    missing = [name for name in IMAGE_NAMES if name not in extracted]
    if missing:
        raise RuntimeError(f"the sdist {tarball.name} lacks expected images: {missing}")
    return extracted


def main() -> int:
    """Command-line entry: fetch, print a one-line summary, exit non-zero on failure."""
    already = images_present()
    try:
        names = fetch()
    except (RuntimeError, OSError, tarfile.TarError) as exc:
        print(f"fetch_test_data: {exc}", file=sys.stderr)
        return 1
    state = "already cached" if already else "downloaded"
    print(f"fetch_test_data: {len(names)} test images {state} in {CACHE_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
