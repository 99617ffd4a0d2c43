"""ImageNet-V2 given as its downloaded .tar.gz: verify the SHA-256, extract once into a cache, reuse.

Why verify: a truncated or different archive would be scored without complaint. Only the three published
archives are accepted; for a custom archive, extract it yourself and pass the folder (its layout is still checked).
Why a cache: extracting 10,000 JPEGs takes a while; later runs reuse the folder. Extraction goes to a temporary
sibling folder that is renamed into place, so an interrupted or concurrent extraction never leaves a half folder.
"""
from __future__ import annotations

from pathlib import Path

from rsb.run import folder as run_folder
from rsb.errors import UserError

# Published SHA-256 of the three archives (RECIPES.md, "ImageNet-V2 facts").
KNOWN_ARCHIVES = {
    "f0c37fdf925916b19ea1323cd9a2208cdb6959ba2c32eef2a7fc393835c9ca7c": "matched-frequency",
    "32142bfe998f9cfa4141be691f6a80eeb1e27b24bd532a668eb08c26d98897a2": "threshold0.7",
    "85e4ace30f3f0d660152062254b8759dda66267b27f7ec0fd8d5768f1073a04b": "top-images",
}
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def cache_root() -> Path:
    return run_folder.cache_root() / "imagenetv2"


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def variant_of(path: Path) -> tuple[str, str]:
    """(variant, sha256) of a published archive; any other file is a UserError naming the accepted ones."""
    digest = run_folder.file_digest(path, "sha256")
    if digest not in KNOWN_ARCHIVES:
        names = ", ".join(f"{v} ({h[:12]}...)" for h, v in KNOWN_ARCHIVES.items())
        raise UserError(f"archive {path} has SHA-256 {digest}, which is not one of the published ImageNet-V2 "
                        f"archives ({names}); download it again, or extract it yourself and pass the folder.")
    return KNOWN_ARCHIVES[digest], digest


def extract_cached(path: str | Path) -> tuple[Path, str]:
    """(folder, variant): where a verified archive is extracted, extracting it first if the cache lacks it."""
    path = Path(path)
    variant, digest = variant_of(path)
    return run_folder.extract_once(path, cache_root() / f"{variant}-{digest[:16]}"), variant
