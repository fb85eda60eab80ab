"""The local base image: a Debian root filesystem from debootstrap, imported into Docker.

No image registry is reachable on some machines; Debian's package mirror is. The Dockerfile takes
this image as BASE_IMAGE in place of the public Python image (same Python 3.11, same Debian).
The host's CA bundle goes in so that pip inside a build verifies PyPI like the host does.

    python -m libs.deploy.base_image [--image NAME] [--mirror URL]
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from libs.deploy.commands import DeployError, log, run
from libs.deploy.tools import docker_cli

DEFAULT_IMAGE = "medai-local/python:3.11-bookworm"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
FALLBACK_MIRROR = "http://deb.debian.org/debian"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
APT_SOURCES = (Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"))
# Left out of the image: package caches and lists, documentation, translations.
PRUNED = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale",
          "usr/share/info")
IMAGE_CHANGES = ("ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8",
                 'CMD ["python3"]')


def host_mirror(sources: tuple[Path, ...] = APT_SOURCES) -> str:
    """The Debian mirror the host's apt uses (the first `URIs:`/`deb` line naming a .../debian)."""
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files += sorted(path for path in source.iterdir() if path.suffix in (".sources", ".list"))
        elif source.is_file():
            files.append(source)
    for path in files:
        for match in re.finditer(r"^(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+/debian)/?\s", path.read_text(),
                                 re.MULTILINE):
            return match.group(1)
    return FALLBACK_MIRROR


def image_exists(docker: str, image: str) -> bool:
    return run([docker, "image", "inspect", image], check=False).returncode == 0


def debootstrap(root: Path, mirror: str, log_file: Path) -> None:
    run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root), mirror],
        log_file=log_file, timeout=1800)


def prune(root: Path) -> None:
    for relative in PRUNED:
        folder = root / relative
        if folder.is_dir():
            for child in folder.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()


def install_ca_bundle(root: Path, bundle: Path = HOST_CA_BUNDLE) -> None:
    if not bundle.is_file():
        raise DeployError(f"no CA bundle at {bundle}: pip inside the build could not verify PyPI")
    target = root / "etc/ssl/certs/ca-certificates.crt"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    shutil.copyfile(bundle, target)


def docker_import(docker: str, root: Path, image: str) -> None:
    """`tar -C root -c . | docker import - image`."""
    changes = [argument for change in IMAGE_CHANGES for argument in ("--change", change)]
    with subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE) as tar:
        imported = subprocess.run([docker, "import", *changes, "-", image], stdin=tar.stdout, capture_output=True,
                                  check=False)
        assert tar.stdout is not None
        tar.stdout.close()
    if tar.returncode != 0 or imported.returncode != 0:
        raise DeployError(f"docker import of {root} failed: {imported.stderr.decode(errors='replace').strip()}")


def build_base_image(docker: str, image: str, mirror: str, work_dir: Path, log_file: Path) -> None:
    """debootstrap, prune, add the host's CA bundle, import as `image`."""
    with tempfile.TemporaryDirectory(prefix="medai-rootfs-", dir=work_dir) as folder:
        root = Path(folder) / "rootfs"
        log.info("debootstrap %s from %s (a few minutes)", SUITE, mirror)
        debootstrap(root, mirror, log_file)
        prune(root)
        install_ca_bundle(root)
        docker_import(docker, root, image)
    log.info("imported the base image %s", image)


def ensure_base_image(docker: str, image: str, mirror: str, work_dir: Path, log_file: Path) -> bool:
    """Build the base image unless it exists; whether it was built now."""
    if image_exists(docker, image):
        return False
    build_base_image(docker, image, mirror, work_dir, log_file)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument("--mirror", default=None, help="Debian mirror (default: the host's apt mirror)")
    parser.add_argument("--work-dir", type=Path, default=Path("/var/tmp"))
    args = parser.parse_args()
    docker = docker_cli()
    build_base_image(docker, args.image, args.mirror or host_mirror(), args.work_dir,
                     args.work_dir / "medai-debootstrap.log")


if __name__ == "__main__":
    main()
