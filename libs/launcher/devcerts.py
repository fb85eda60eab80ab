"""The development CA and mesh certificates `make run` creates on first start (and renews when due) in
`.medai/tls`, like the dev API key: `medai certs dev` does the same explicitly."""
from __future__ import annotations

from libs.config import LauncherSettings
from libs.tls.issue import IssueReport, ensure_dev_certificates


def ensure_dev_certs(settings: LauncherSettings) -> IssueReport | None:
    """The certificates of every identity in the TLS folder; None when TLS is off or files are configured
    explicitly (production: they come from a Secret or cert-manager, never from here)."""
    tls = settings.tls
    if not tls.enabled or not tls.uses_folder:
        return None
    return ensure_dev_certificates(tls.folder(settings.app.state_dir), tls.trust_domain, tls.dev_cert_days)


def describe(report: IssueReport) -> str | None:
    """The line `make run` prints, or None when nothing changed."""
    if report.created_ca:
        return (f"created a development CA and mesh certificates for mutual TLS in {report.folder} "
                f"(keys mode 0600): {', '.join(report.issued)}")
    if report.issued:
        return f"renewed mesh certificates in {report.folder}: {', '.join(report.issued)}"
    return None
