"""Generate the Python stubs, the Envoy descriptor set and the OpenAPI document from `protos/` (`make protos`).

The output tree matches the proto package path (`medai/<area>/v1/`), so the generated
imports (`from medai.common.v1 import ...`) resolve without patching.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from libs import openapi

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = PROJECT_ROOT / "protos"
OUTPUT_ROOT = PROJECT_ROOT / "libs" / "generated"
DESCRIPTOR_NAME = "medai_descriptor.pb"
OPENAPI_NAME = "openapi.json"

_GOOGLEAPIS_ROOT = Path(annotations_pb2.__file__).resolve().parent.parent.parent
_WELL_KNOWN_ROOT = Path(grpc_tools.__file__).resolve().parent / "_proto"


def proto_files() -> list[str]:
    """Every .proto under protos/, relative to it, in a stable order."""
    return sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))


def generate(output_root: Path) -> None:
    """Write stubs, type stubs, package markers and the descriptor set under output_root."""
    output_root.mkdir(parents=True, exist_ok=True)
    files = proto_files()
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{_GOOGLEAPIS_ROOT}",
        f"-I{_WELL_KNOWN_ROOT}",
        f"--python_out={output_root}",
        f"--pyi_out={output_root}",
        f"--grpc_python_out={output_root}",
        "--include_imports",
        f"--descriptor_set_out={output_root / DESCRIPTOR_NAME}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for module in output_root.rglob("*.py"):
        _mark_packages(module.parent, output_root)
    _write_openapi(base_args=args[:4], files=files, target=output_root / OPENAPI_NAME)


def _write_openapi(base_args: list[str], files: list[str], target: Path) -> None:
    """The OpenAPI document, from a descriptor set with comments (source info)."""
    with tempfile.TemporaryDirectory() as tmp:
        described = Path(tmp) / "described.pb"
        if protoc.main([*base_args, "--include_imports", "--include_source_info",
                        f"--descriptor_set_out={described}", *files]) != 0:
            raise SystemExit("protoc failed")
        document = openapi.build_document(descriptor_pb2.FileDescriptorSet.FromString(described.read_bytes()))
    target.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _mark_packages(directory: Path, output_root: Path) -> None:
    """Give every folder from directory up to (not including) output_root an __init__.py."""
    while directory != output_root:
        (directory / "__init__.py").touch()
        directory = directory.parent


def regenerate() -> None:
    """Replace the committed tree with a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        shutil.rmtree(OUTPUT_ROOT / "medai", ignore_errors=True)
        shutil.copytree(Path(tmp) / "medai", OUTPUT_ROOT / "medai")
        shutil.copy2(Path(tmp) / DESCRIPTOR_NAME, OUTPUT_ROOT / DESCRIPTOR_NAME)
        shutil.copy2(Path(tmp) / OPENAPI_NAME, OUTPUT_ROOT / OPENAPI_NAME)


def drift(against: Path = OUTPUT_ROOT) -> list[str]:
    """Files whose committed content differs from a fresh generation (empty: no drift)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        fresh_files = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
        committed = {
            p.relative_to(against)
            for p in against.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.name != "README.md"
        }
        differing = [
            str(f) for f in sorted(fresh_files & committed) if (fresh / f).read_bytes() != (against / f).read_bytes()
        ]
        return differing + [f"missing: {f}" for f in sorted(fresh_files - committed)] + [
            f"stale: {f}" for f in sorted(committed - fresh_files)
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when committed stubs drift from protos/")
    args = parser.parse_args(argv)
    if args.check:
        problems = drift()
        for line in problems:
            print(f"drift: {line}", file=sys.stderr)
        return 1 if problems else 0
    regenerate()
    print(f"generated {len(proto_files())} protos into {OUTPUT_ROOT.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
