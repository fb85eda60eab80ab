"""`medai certs ...`: the development CA and the mesh's certificates (`make run` does `dev` on every start)."""
from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509

from libs.config import AppSettings, TlsSettings
from libs.config.tls import CA_CERT_NAME
from libs.tls.identity import EDGE_CERT, MESH_IDENTITIES
from libs.tls.issue import IssueError, ensure_dev_certificates, export_per_identity

app = typer.Typer(help="Manage the mesh's TLS certificates.", no_args_is_help=True)
# The users of the images (compose): every MedServe image runs as 10001, Prometheus's as nobody.
CONTAINER_OWNERS = {**dict.fromkeys([*MESH_IDENTITIES, EDGE_CERT], 10001), "prometheus": 65534}
K8S_SECRET_PREFIX = "medai-tls-"
K8S_EDGE_SECRET = "medai-edge-tls"
DirOption = Annotated[Path | None, typer.Option("--dir", help="Certificate folder (default: TLS_DIR or "
                                                                 "APP_STATE_DIR/tls)")]


def _folder(folder: Path | None) -> Path:
    return folder or TlsSettings().folder(AppSettings().state_dir)


@app.command()
def dev(
    folder: DirOption = None,
    renew: Annotated[bool, typer.Option(help="Issue every certificate again (same CA): a rotation")] = False,
    days: Annotated[int | None, typer.Option(min=1, help="Lifetime of the certificates (default TLS_DEV_CERT_DAYS)")]
    = None,
) -> None:
    """Create the development CA (once) and a certificate per identity (missing or due for renewal)."""
    settings = TlsSettings()
    target = _folder(folder)
    try:
        report = ensure_dev_certificates(target, settings.trust_domain, days or settings.dev_cert_days, renew=renew)
    except IssueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    if report.created_ca:
        typer.echo(f"created a development CA in {target / CA_CERT_NAME}")
    typer.echo(f"issued: {', '.join(report.issued)}" if report.issued else "every certificate is current")
    typer.echo(f"folder: {target} (keys mode 0600)")


@app.command()
def export(
    out: Annotated[Path, typer.Option(help="Folder for <identity>/{ca.crt,tls.crt,tls.key}")],
    folder: DirOption = None,
    container_owners: Annotated[bool, typer.Option(help="Give each sub-folder to its image's user (compose; "
                                                        "needs root)")] = False,
) -> None:
    """Copy the certificates into one folder per identity, each mounted into its own container (compose);
    again after `dev --renew`, and the containers pick the new files up."""
    written = export_per_identity(_folder(folder), out, owners=CONTAINER_OWNERS if container_owners else None)
    typer.echo(f"exported {len(written)} identities into {out}")


@app.command()
def show(folder: DirOption = None) -> None:
    """Each certificate in the folder: its names and when it expires."""
    target = _folder(folder)
    now = datetime.datetime.now(datetime.UTC)
    for path in sorted(target.glob("*.crt")):
        certificate = x509.load_pem_x509_certificates(path.read_bytes())[0]
        try:
            names = [str(name.value) for name in
                     certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value]
        except x509.ExtensionNotFound:
            names = []
        days = (certificate.not_valid_after_utc - now).total_seconds() / 86400
        typer.echo(f"{path.name:<18} expires in {days:6.1f} days  serial {certificate.serial_number:x}  "
                   f"{' '.join(names) or certificate.subject.rfc4514_string()}")


def _secret(name: str, namespace: str, files: dict[str, Path]) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "medai"}},
            "data": {key: base64.b64encode(path.read_bytes()).decode() for key, path in files.items()}}


@app.command()
def k8s(folder: DirOption = None,
        namespace: Annotated[str, typer.Option(help="The mesh's namespace")] = "medai") -> None:
    """Print the folder's certificates as Kubernetes Secrets (medai-tls-<identity>, medai-edge-tls):
    `medai certs k8s | kubectl apply -f -`. Not the CA key: it stays here."""
    target = _folder(folder)
    ca = target / CA_CERT_NAME
    secrets = [_secret(f"{K8S_SECRET_PREFIX}{identity}", namespace,
                       {"tls.crt": target / f"{identity}.crt", "tls.key": target / f"{identity}.key", "ca.crt": ca})
               for identity in MESH_IDENTITIES]
    secrets.append(_secret(K8S_EDGE_SECRET, namespace,
                           {"tls.crt": target / f"{EDGE_CERT}.crt", "tls.key": target / f"{EDGE_CERT}.key"}))
    typer.echo(json.dumps({"apiVersion": "v1", "kind": "List", "items": secrets}, indent=2))
