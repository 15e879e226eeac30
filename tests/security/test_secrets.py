"""No secret in anything hvlm writes: stdout, stderr (debug logs, both formats), plan files, files.

hvlm runs as a subprocess against the lab (hosts over HTTPS/Basic and HTTP/NTLM with message
encryption) and the session's Samba DC (LDAPS simple bind as a dedicated Domain Admin), with
unique, known passwords in HVLM_WINRM_PASSWORD / HVLM_LDAP_PASSWORD. Every byte it wrote is then
searched for each secret in the forms it could take on the way out: as is, UTF-16-LE (Windows),
hex, URL-quoted, and base64 at every alignment (a Basic header, an NTLM or CLIXML blob).
Error paths too: a wrong WinRM password, a wrong LDAP password, a host that refuses every login.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from hvlm_lab.pki import LabCA
from hvlm_lab.samba.dc import SambaDC
from hvlm_lab.wsman.faults import CmdletFault
from hvlm_lab.wsman.server import Credentials, FaultSpec, LabServer, Transport
from tests.integration.helpers import check_errors
from tests.security.conftest import (
    DC_URL,
    Run,
    clean_env,
    domain_admin,
    host_entry,
    hvlm,
    hvlm_all,
    lab_host,
    manifest,
    unique_secret,
)

pytestmark = [pytest.mark.lab, pytest.mark.samba]

WINRM_USER = "secadmin"
LDAP_NAME = "secldap"
HOSTS = ("SEC01", "SEC02", "SEC03", "SEC04")
NTLM_HOSTS = ("SEC02", "SEC04")
# Hosts written by each log format's happy path (disjoint: both formats log real writes), each
# pair its own migration group: a --host selection crossing groups is another test's business.
HOSTS_OF = {"json": ("SEC01", "SEC02"), "console": ("SEC03", "SEC04")}
FORMATS = ("json", "console")


@dataclass(frozen=True)
class SecretLab:
    lab: LabServer
    manifest: Path
    winrm_password: str
    ldap_user: str
    ldap_password: str
    wrong_winrm_password: str
    wrong_ldap_password: str

    @property
    def secrets(self) -> tuple[str, ...]:
        return (
            self.winrm_password,
            self.ldap_password,
            self.wrong_winrm_password,
            self.wrong_ldap_password,
        )

    def env(self, work: Path, **override: str) -> dict[str, str]:
        """Credentials in the environment; HOME and TMPDIR inside `work` (scanned afterwards)."""
        for sub in ("home", "tmp"):
            (work / sub).mkdir(exist_ok=True)
        values = {
            "HVLM_WINRM_USER": WINRM_USER,
            "HVLM_WINRM_PASSWORD": self.winrm_password,
            "HVLM_LDAP_USER": self.ldap_user,
            "HVLM_LDAP_PASSWORD": self.ldap_password,
            "HOME": str(work / "home"),
            "TMPDIR": str(work / "tmp"),
        }
        return clean_env(**{**values, **override})


@pytest.fixture(scope="module")
def secret_lab(
    samba_dc: SambaDC,
    samba_ca: LabCA,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SecretLab]:
    winrm_password, ldap_password = unique_secret("winrm"), unique_secret("ldap")
    samba_dc.add_computers(HOSTS)
    ldap_user = domain_admin(samba_dc, LDAP_NAME, ldap_password)
    credentials = Credentials(WINRM_USER, winrm_password)
    configs = [
        lab_host(
            name,
            credentials,
            Transport.HTTP_NEGOTIATE if name in NTLM_HOSTS else Transport.HTTPS_BASIC,
        )
        for name in HOSTS
    ]
    work = tmp_path_factory.mktemp("secrets-lab")
    with LabServer(configs, samba_ca, work / "lab") as lab:
        ntlm = {"transport": "http", "auth": "ntlm"}
        hosts = [host_entry(lab, n, **(ntlm if n in NTLM_HOSTS else {})) for n in HOSTS]
        path = manifest(
            work / "manifest.yaml",
            hosts,
            {"transport": "https", "auth": "basic", "certValidation": str(samba_ca.cert_path)},
            {
                "servers": [{"url": DC_URL, "address": "127.0.0.1"}],
                "auth": "simple",
                "certValidation": str(samba_ca.cert_path),
            },
            groups=list(HOSTS_OF.values()),
        )
        yield SecretLab(
            lab,
            path,
            winrm_password,
            ldap_user,
            ldap_password,
            unique_secret("wrongwinrm"),
            unique_secret("wrongldap"),
        )


# --- what a secret looks like on the way out ------------------------------------------------------


def encoded_forms(secret: str) -> dict[str, bytes]:
    """Every form worth searching for; base64 cores found at any alignment of a longer blob."""
    forms = {
        "plain": secret.encode(),
        "utf-16-le": secret.encode("utf-16-le"),
        "hex": secret.encode().hex().encode(),
        "url-quoted": quote(secret, safe="").encode(),
    }
    for label, data in (("utf-8", secret.encode()), ("utf-16-le", secret.encode("utf-16-le"))):
        for shift in range(3):
            encoded = base64.b64encode(b"\0" * shift + data)
            core = encoded[4 if shift else 0 : -4]  # only the characters the secret alone decides
            forms[f"base64({label})@{shift}"] = core
            forms[f"base64url({label})@{shift}"] = core.replace(b"+", b"-").replace(b"/", b"_")
    return forms


def test_encoded_forms_find_a_basic_header() -> None:
    """The search itself: base64 of 'user:secret' (a Basic header) is found whatever the user."""
    secret = unique_secret("probe")
    cores = [v for k, v in encoded_forms(secret).items() if k.startswith("base64(utf-8)")]
    for user in ("a", "ab", "abc"):
        header = base64.b64encode(f"{user}:{secret}".encode())
        assert any(core in header for core in cores)


def leaks(blobs: dict[str, bytes], secrets: Sequence[str]) -> list[str]:
    found = []
    for index, secret in enumerate(secrets):
        for form, needle in encoded_forms(secret).items():
            found += [
                f"secret #{index} as {form} in {where}"
                for where, blob in blobs.items()
                if needle in blob
            ]
    return found


def written(work: Path, runs: Sequence[Run]) -> dict[str, bytes]:
    """Every byte hvlm wrote: each run's stdout and stderr, every file under the work dir."""
    blobs: dict[str, bytes] = {}
    for i, run in enumerate(runs):
        blobs[f"run {i} ({' '.join(run.args[:3])}) stdout"] = run.stdout
        blobs[f"run {i} ({' '.join(run.args[:3])}) stderr"] = run.stderr
    for path in sorted(work.rglob("*")):
        if path.is_file():
            blobs[str(path.relative_to(work))] = path.read_bytes()
    return blobs


def assert_nothing_leaked(work: Path, runs: Sequence[Run], secrets: Sequence[str]) -> None:
    blobs = written(work, runs)
    assert any(run.stderr for run in runs), "no log line at all: the search would prove nothing"
    assert leaks(blobs, secrets) == []


def logs(fmt: str) -> list[str]:
    return ["--log-level", "debug", "--log-format", fmt]


def selection(names: Sequence[str]) -> list[str]:
    return [arg for name in names for arg in ("--host", name)]


# --- the happy path ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_plan_check_apply_write_no_secret(secret_lab: SecretLab, fmt: str, tmp_path: Path) -> None:
    env, m, only = secret_lab.env(tmp_path), str(secret_lab.manifest), selection(HOSTS_OF[fmt])
    plan_file = str(tmp_path / "plan.json")
    out = "json" if fmt == "json" else "markdown"
    plan, check = hvlm_all(
        [
            (
                [*logs(fmt), "plan", m, "--out", plan_file, "--detailed-exitcode", *only],
                env,
                tmp_path,
            ),
            (
                [*logs(fmt), "check", m, "--format", out.replace("markdown", "human"), *only],
                env,
                tmp_path,
            ),
        ]
    )
    apply = hvlm([*logs(fmt), "apply", plan_file, "--auto-approve", "--format", out], env, tmp_path)
    assert plan.returncode == 2, plan.text  # changes to make
    errors = check_errors(check.stdout.decode())  # the report's own summary
    assert check.returncode == (1 if errors else 0), check.text
    assert apply.returncode == 0, apply.text
    assert (tmp_path / "plan.json").stat().st_size > 0
    runs = [plan, check, apply]
    assert_debug_logs(runs, fmt, HOSTS_OF[fmt])
    assert_nothing_leaked(tmp_path, runs, secret_lab.secrets)


def assert_debug_logs(runs: Sequence[Run], fmt: str, hosts: Sequence[str]) -> None:
    """The search covers real debug output: debug events naming every host read."""
    stderr = b"".join(run.stderr for run in runs).decode()
    if fmt == "json":
        # (hvlm also prints plain notes such as "plan saved to FILE" on stderr: not log events)
        events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
        assert any(e.get("level") == "debug" for e in events), stderr
        assert {e.get("host") for e in events} >= set(hosts), stderr
    else:
        assert "debug" in stderr and all(host in stderr for host in hosts), stderr


# --- error paths (formats alternate between runs: each path is seen by both renderers) ---------


def said(run: Run, *lines: str) -> bool:
    """hvlm refused for that reason: each fragment is in its own output, not a crash's."""
    text = run.text
    return "internal error" not in text and all(line in text for line in lines)


# hvlm.hosts.errors.map_exception: Basic's 401, NTLM's failed handshake (same words)
WINRM_AUTH = "authentication failed"
LDAP_AUTH = "invalidCredentials"  # the DC's LDAP result 49, as hvlm reports it


def test_wrong_winrm_password_writes_no_secret(secret_lab: SecretLab, tmp_path: Path) -> None:
    env = secret_lab.env(tmp_path, HVLM_WINRM_PASSWORD=secret_lab.wrong_winrm_password)
    m = str(secret_lab.manifest)
    runs = hvlm_all(
        [
            ([*logs("json"), "plan", m, "--out", str(tmp_path / "plan.json")], env, tmp_path),
            ([*logs("console"), "apply", m, "--auto-approve"], env, tmp_path),
            ([*logs("console"), "check", m], env, tmp_path),
        ]
    )
    for run in runs:
        assert run.returncode == 1 and said(run, WINRM_AUTH, *HOSTS), run.text
    assert_nothing_leaked(tmp_path, runs, secret_lab.secrets)


def test_wrong_ldap_password_writes_no_secret(secret_lab: SecretLab, tmp_path: Path) -> None:
    env = secret_lab.env(tmp_path, HVLM_LDAP_PASSWORD=secret_lab.wrong_ldap_password)
    m = str(secret_lab.manifest)
    runs = hvlm_all(
        [
            ([*logs("console"), "plan", m, "--out", str(tmp_path / "plan.json")], env, tmp_path),
            ([*logs("json"), "apply", m, "--auto-approve"], env, tmp_path),
        ]
    )
    for run in runs:
        assert run.returncode == 1 and said(run, LDAP_AUTH), run.text
    assert_nothing_leaked(tmp_path, runs, secret_lab.secrets)


def test_host_refusing_auth_writes_no_secret(secret_lab: SecretLab, tmp_path: Path) -> None:
    env, m = secret_lab.env(tmp_path), str(secret_lab.manifest)
    refusing = ("SEC01", "SEC02")  # Basic over HTTPS and NTLM over HTTP
    for name in refusing:
        secret_lab.lab.set_fault(name, FaultSpec(refuse_auth=True))
    try:
        runs = hvlm_all(
            [
                ([*logs("json"), "plan", m, "--out", str(tmp_path / "plan.json")], env, tmp_path),
                ([*logs("console"), "apply", m, "--auto-approve"], env, tmp_path),
            ]
        )
    finally:
        for name in refusing:
            secret_lab.lab.set_fault(name, FaultSpec())
    for run in runs:
        assert run.returncode == 1 and said(run, WINRM_AUTH, *refusing), run.text
    assert all(secret_lab.lab.stats(n)["auth_failures"] > 0 for n in refusing)
    assert_nothing_leaked(tmp_path, runs, secret_lab.secrets)


def test_a_host_echoing_the_passwords_writes_no_secret(secret_lab: SecretLab,
                                                        tmp_path: Path) -> None:
    """A host whose error record carries both passwords (a module that echoes its logon): the
    message reaches hvlm as backend text, and hvlm.errors.redact_secrets takes them out of
    everything hvlm writes (issue 21, item 5)."""
    env, m = secret_lab.env(tmp_path), str(secret_lab.manifest)
    echo = (f"logon as {WINRM_USER} with {secret_lab.winrm_password} failed "
            f"(directory password {secret_lab.ldap_password})")
    secret_lab.lab.set_fault("SEC01", FaultSpec(cmdlet_faults=(CmdletFault("Get-VMHost", echo),)))
    try:
        runs = hvlm_all(
            [
                ([*logs("json"), "plan", m, "--out", str(tmp_path / "plan.json")], env, tmp_path),
                ([*logs("console"), "check", m], env, tmp_path),
            ]
        )
    finally:
        secret_lab.lab.set_fault("SEC01", FaultSpec())
    assert_nothing_leaked(tmp_path, runs, secret_lab.secrets)
    for run in runs:
        assert run.returncode == 1, run.text
        assert said(run, f"SEC01: read (Get-VMHost): logon as {WINRM_USER} with <redacted> failed "
                         "(directory password <redacted>)"), run.text
