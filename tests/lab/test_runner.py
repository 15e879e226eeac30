"""The lab as a whole: `hvlm lab up/status/stats/down` from a shell, the Python API, the fixtures.

Clients here are plain pypsrp and plain ldap3 (not hvlm's code), configured only from what the lab
wrote (manifest.yaml, env, lab.json), as a user would. Tests that start their own DC run in a
private network namespace (`private_netns`): Samba's ports are fixed.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest
import yaml
from pypsrp.exceptions import AuthenticationError
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

from hvlm_lab.hyperv.config import AuthenticationType, server_2022, server_2025
from hvlm_lab.runner.files import (
    LabError,
    LabInfo,
    load_faults,
    manifest_document,
    parse_faults,
    read_env,
    read_info,
)
from hvlm_lab.runner.lab import Lab
from hvlm_lab.runner.process import start_process
from hvlm_lab.wsman.server import FaultSpec
from tests.conftest import NewLab

pytestmark = pytest.mark.lab

HVLM = [sys.executable, "-m", "hvlm"]
ENV_NAMES = {"HVLM_WINRM_USER", "HVLM_WINRM_PASSWORD", "HVLM_LDAP_USER", "HVLM_LDAP_PASSWORD",
             "KRB5_CONFIG"}
MIGRATION_SPN = "Microsoft Virtual System Migration Service"


# --- helpers: a user's view -------------------------------------------------------------------------


def hvlm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*HVLM, *args], capture_output=True, text=True, timeout=600)
    assert "Traceback" not in result.stdout + result.stderr, f"hvlm crashed:\n{result.stderr}"
    if check and result.returncode != 0:
        raise AssertionError(f"hvlm {' '.join(args)} -> {result.returncode}\n{result.stderr}")
    return result


def manifest_of(workdir: Path) -> dict[str, Any]:
    data = yaml.safe_load((workdir / "manifest.yaml").read_text())
    assert isinstance(data, dict)
    return data


def host_entry(manifest: dict[str, Any], name: str) -> tuple[str, int]:
    (entry,) = [h for h in manifest["hosts"] if h["name"] == name]
    address, _, port = entry["address"].rpartition(":")
    return address, int(port)


def read_vmhost(manifest: dict[str, Any], env: dict[str, str], name: str,
                password: str | None = None) -> dict[str, Any]:
    """Plain pypsrp: Get-VMHost over HTTPS/Basic, validating against the manifest's CA."""
    address, port = host_entry(manifest, name)
    wsman = WSMan(address, port=port, ssl=True, auth="basic", username=env["HVLM_WINRM_USER"],
                  password=password or env["HVLM_WINRM_PASSWORD"], no_proxy=True,
                  cert_validation=manifest["connection"]["certValidation"])
    with RunspacePool(wsman) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-VMHost")
        output = ps.invoke()
        assert not ps.had_errors and not ps.streams.error, [str(e) for e in ps.streams.error]
        (vmhost,) = output
    return {**vmhost.adapted_properties, **vmhost.extended_properties}


def ldap_computer(manifest: dict[str, Any], env: dict[str, str], name: str) -> dict[str, Any]:
    """Plain ldap3: simple bind over LDAPS with the env's credentials; one computer object."""
    directory = manifest["directory"]
    server_entry = directory["servers"][0]
    tls = ldap3.Tls(ca_certs_file=directory["certValidation"], validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(server_entry["address"], port=636, use_ssl=True, tls=tls)
    with ldap3.Connection(server, env["HVLM_LDAP_USER"], env["HVLM_LDAP_PASSWORD"],
                          auto_bind=True) as conn:
        conn.search("DC=lab,DC=example", f"(sAMAccountName={name}$)",
                    attributes=["dNSHostName", "servicePrincipalName", "userAccountControl"])
        (entry,) = conn.entries
        return dict(entry.entry_attributes_as_dict)


def listening_ports() -> set[int]:
    """Every TCP port in LISTEN state in this thread's network namespace."""
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/thread-self/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture
def lab_dir(tmp_path: Path, private_netns: None, monkeypatch: pytest.MonkeyPatch,
            request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory for `hvlm lab up` in a private network namespace; always `down` at the end."""
    from tests.lab.samba_fixtures import samba_template_dir

    # provisioned domains cached with pytest's, not in ~/.cache
    templates = samba_template_dir(request.config, tmp_path_factory)
    monkeypatch.setenv("HVLM_SAMBA_TEMPLATES", str(templates))
    workdir = tmp_path / "lab"
    try:
        yield workdir
    finally:
        hvlm("lab", "down", "--dir", str(workdir), check=False)


# --- hvlm lab up / status / stats / down from a shell ----------------------------------------------


def test_up_stats_down_from_a_shell(lab_dir: Path) -> None:
    up = hvlm("lab", "up", "--dir", str(lab_dir), "--hosts", "3")
    assert "3 hosts HV01..HV03" in up.stdout

    validated = hvlm("validate", "--strict", str(lab_dir / "manifest.yaml"))
    assert "valid (3 hosts, 0 warnings)" in validated.stdout
    env = read_env(lab_dir)
    assert set(env) >= ENV_NAMES
    assert oct((lab_dir / "env").stat().st_mode & 0o777) == "0o600"
    info = read_info(lab_dir)
    assert info is not None and info.mode == "process" and info.directory is not None
    assert Path(info.ca) == lab_dir / "ca.pem"

    manifest = manifest_of(lab_dir)
    vmhost = read_vmhost(manifest, env, "HV02")
    assert vmhost["VirtualMachineMigrationEnabled"] is False
    account = ldap_computer(manifest, env, "HV02")
    assert account["dNSHostName"] == ["hv02.lab.example"]
    assert f"{MIGRATION_SPN}/hv02.lab.example" in account["servicePrincipalName"]

    assert hvlm("lab", "status", "--dir", str(lab_dir)).returncode == 0
    stats = json.loads(hvlm("lab", "stats", "--dir", str(lab_dir), "--reset").stdout)
    hv02 = stats["hosts"]["HV02"]
    assert hv02["actions"] == ["Create", "Receive", "Command", "Receive", "Delete"]
    assert [c["command"] for c in hv02["cmdlets"]] == ["Get-VMHost"]
    assert stats["hosts"]["HV01"]["http_requests"] == 0
    assert stats["directory"]["changed_computers"] == []
    after_reset = json.loads(hvlm("lab", "stats", "--dir", str(lab_dir), "--host", "HV02").stdout)
    assert after_reset["http_requests"] == 0 and after_reset["cmdlets"] == []

    down = hvlm("lab", "down", "--dir", str(lab_dir))
    assert "stopped lab process" in down.stdout
    assert listening_ports() == set()  # the hosts, the control channel and Samba: all gone
    again = hvlm("lab", "down", "--dir", str(lab_dir))
    assert "already stopped" in again.stdout
    status = hvlm("lab", "status", "--dir", str(lab_dir), "--format", "json", check=False)
    assert status.returncode == 1 and json.loads(status.stdout)["up"] is False


def test_directory_changes_show_in_stats(lab_dir: Path) -> None:
    hvlm("lab", "up", "--dir", str(lab_dir), "--hosts", "2")
    env, manifest = read_env(lab_dir), manifest_of(lab_dir)
    directory = manifest["directory"]
    tls = ldap3.Tls(ca_certs_file=directory["certValidation"], validate=ssl.CERT_REQUIRED)
    server = ldap3.Server("127.0.0.1", port=636, use_ssl=True, tls=tls)
    with ldap3.Connection(server, env["HVLM_LDAP_USER"], env["HVLM_LDAP_PASSWORD"],
                          auto_bind=True) as conn:
        conn.modify("CN=HV01,CN=Computers,DC=lab,DC=example",
                    {"msDS-AllowedToDelegateTo": [(ldap3.MODIFY_ADD, ["cifs/hv02.lab.example"])]})
        assert conn.result["result"] == 0, conn.result
    stats = json.loads(hvlm("lab", "stats", "--dir", str(lab_dir)).stdout)
    assert stats["directory"]["changed_computers"] == ["HV01"]


def test_down_stops_the_dc_even_when_the_lab_process_was_killed(lab_dir: Path) -> None:
    hvlm("lab", "up", "--dir", str(lab_dir), "--hosts", "1")
    info = read_info(lab_dir)
    assert info is not None and info.directory is not None and info.directory.pid
    os.kill(info.pid, signal.SIGKILL)
    refused = hvlm("lab", "up", "--dir", str(lab_dir), "--hosts", "1", check=False)
    assert refused.returncode == 1
    assert f"the DC of an earlier lab in {lab_dir} still runs" in refused.stderr
    down = hvlm("lab", "down", "--dir", str(lab_dir))
    assert f"stopped samba {info.directory.pid}" in down.stdout
    assert listening_ports() == set()


def test_up_refuses_a_directory_whose_lab_is_running(lab_dir: Path) -> None:
    hvlm("lab", "up", "--dir", str(lab_dir), "--hosts", "1", "--no-directory")
    second = hvlm("lab", "up", "--dir", str(lab_dir), "--hosts", "1", check=False)
    assert second.returncode == 1
    assert "already running" in second.stderr and "hvlm lab down" in second.stderr
    assert hvlm("lab", "status", "--dir", str(lab_dir)).returncode == 0  # still the first one


def test_faults_file_and_no_directory(lab_dir: Path, tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text(
        "HV02: {refuse_auth: true}\n"
        "HV03:\n  latency_ms: 40\n"
        "  cmdlet_faults:\n    - {cmdlet: Get-VMHost, message: Access is denied.}\n"
    )
    hvlm("lab", "up", "--dir", str(lab_dir), "--hosts", "3", "--no-directory",
         "--latency-ms", "5", "--faults", str(faults))
    env, manifest = read_env(lab_dir), manifest_of(lab_dir)
    assert "directory" not in manifest and "delegation" not in manifest["defaults"]
    assert "authentication" not in manifest["defaults"]["migration"]
    assert not {"HVLM_LDAP_USER", "HVLM_LDAP_PASSWORD", "KRB5_CONFIG"} & set(env)
    assert hvlm("validate", "--strict", str(lab_dir / "manifest.yaml")).returncode == 0

    assert read_vmhost(manifest, env, "HV01")["MaximumStorageMigrations"] == 2
    with pytest.raises(AuthenticationError):
        read_vmhost(manifest, env, "HV02")
    with pytest.raises(AssertionError):  # the injected error arrives on the error stream
        read_vmhost(manifest, env, "HV03")

    stats = json.loads(hvlm("lab", "stats", "--dir", str(lab_dir)).stdout)
    assert stats["directory"] is None
    assert stats["hosts"]["HV02"]["auth_failures"] >= 1
    assert stats["hosts"]["HV03"]["cmdlets"][0]["outcome"] == "terminated"
    info = read_info(lab_dir)
    assert info is not None and info.control_url
    control = json.loads(_get(info.control_url + "/faults/HV01"))
    assert control["latency_ms"] == 5  # --latency-ms for the hosts without one of their own
    assert json.loads(_get(info.control_url + "/faults/HV03"))["latency_ms"] == 40


def _get(url: str) -> bytes:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        body: bytes = response.read()
        return body


def test_bad_faults_are_refused_with_the_host_named(lab_dir: Path, tmp_path: Path) -> None:
    unknown_field = tmp_path / "field.yaml"
    unknown_field.write_text("HV01: {latency: 5}\n")
    result = hvlm("lab", "up", "--dir", str(lab_dir), "--no-directory", "--faults",
                  str(unknown_field), check=False)
    assert result.returncode == 1
    assert "HV01: unknown FaultSpec field(s): latency" in result.stderr

    unknown_host = tmp_path / "host.yaml"
    unknown_host.write_text("HV09: {hang: true}\n")
    result = hvlm("lab", "up", "--dir", str(lab_dir), "--no-directory", "--hosts", "2",
                  "--faults", str(unknown_host), check=False)
    assert result.returncode == 1
    assert "faults name unknown hosts: HV09" in result.stderr
    assert listening_ports() == set()


# --- the Python API ----------------------------------------------------------------------------------


def test_session_lab_serves_pypsrp_and_ldap3_from_its_manifest_and_env(lab: Lab) -> None:
    manifest = yaml.safe_load(lab.manifest_path.read_text())
    assert read_vmhost(manifest, lab.env, "HV01")["MaximumVirtualMachineMigrations"] == 2
    account = ldap_computer(manifest, lab.env, "HV01")
    assert "HOST/hv01.lab.example" in account["servicePrincipalName"]
    assert account["userAccountControl"] == [4096]  # enabled workstation account
    with pytest.raises(AuthenticationError):
        read_vmhost(manifest, lab.env, "HV01", password="wrong")
    assert lab.stats()["hosts"]["HV01"]["auth_failures"] >= 1


def test_manifest_validates_and_targets_every_host(lab: Lab) -> None:
    result = hvlm("validate", "--strict", str(lab.manifest_path))
    assert result.returncode == 0, result.stderr
    status = hvlm("lab", "status", "--dir", str(lab.workdir), "--format", "json")
    assert json.loads(status.stdout)["parts"]["process"] == {"up": True,
                                                            "detail": f"in-process, pid {os.getpid()}"}
    manifest = yaml.safe_load(lab.manifest_path.read_text())
    migration = manifest["defaults"]["migration"]
    assert migration["authentication"] == "Kerberos" and migration["enabled"] is True
    # protocolTransition is not written: on by default for Kerberos hosts (issue 11)
    assert manifest["defaults"]["delegation"] == {"services": ["migration", "cifs"]}
    assert manifest["groups"] == [{"name": "lab", "hosts": ["HV01", "HV02", "HV03"]}]
    subnet = migration["networks"][0]["subnet"]
    assert subnet == "192.168.10.0/24"
    for index, name in enumerate(["HV01", "HV02", "HV03"], start=1):
        addresses = [str(a.interface) for a in lab.hosts[name].config.addresses]
        assert addresses == [f"192.168.10.{10 + index}/24"]  # owns an address in the subnet
        state = lab.hosts[name].snapshot()
        assert not state.enabled and state.authentication is AuthenticationType.CredSSP


def test_new_lab_builds_mixed_fleets(new_lab: NewLab, lab_dc: Any) -> None:
    a, b, c = "MX01", "MX02", "MX03"  # names no other test of the session uses
    fleet = (
        server_2022(a, ["172.16.5.21/24"]),
        server_2025(b, ["172.16.5.22/24"]),
        server_2022(c, ["172.16.5.23/24"], part_of_domain=False, hyperv_installed=False),
    )
    lab = new_lab(host_configs=fleet, faults={b: FaultSpec(latency_ms=1)})
    assert hvlm("validate", str(lab.manifest_path)).returncode == 0
    names = _computers(lab_dc)
    assert {f"{a}$", f"{b}$"} <= names
    assert f"{c}$" not in names  # outside the domain: no computer account
    assert lab.server.fault(b).latency_ms == 1
    info = lab.info
    assert [h.in_domain for h in info.hosts] == [True, True, False]
    assert info.subnet == "172.16.5.0/24"  # the network of the hosts' addresses
    networks = manifest_of(lab.workdir)["defaults"]["migration"]["networks"]
    assert networks == [{"subnet": "172.16.5.0/24", "priority": 0}]


def _computers(dc: Any) -> set[str]:
    with dc.admin_connection() as conn:
        conn.search(dc.base_dn, "(objectClass=computer)", attributes=["sAMAccountName"])
        return {v.decode() for e in conn.response if e["type"] == "searchResEntry"
                for v in e["raw_attributes"]["sAMAccountName"]}


def test_new_labs_never_share_host_names(new_lab: NewLab) -> None:
    first, second = new_lab(2, directory=False), new_lab(2, directory=False)
    assert not set(first.hosts) & set(second.hosts)
    first.stop()
    first.stop()  # idempotent
    assert second.server.stats()  # the other one still serves


def test_two_hundred_hosts_in_their_own_process(tmp_path: Path) -> None:
    with start_process(tmp_path / "lab", hosts=200, directory=False) as proc:
        names = [h.name for h in proc.info.hosts]
        assert len(names) == 200 and names[0] == "HV001" and names[-1] == "HV200"
        assert hvlm("validate", str(proc.manifest_path)).returncode == 0
        manifest = manifest_of(proc.workdir)
        for name in ("HV001", "HV200"):
            assert read_vmhost(manifest, proc.env, name)["MaximumStorageMigrations"] == 2
        assert proc.stats("HV200")["action_counts"]["Command"] == 1
        proc.set_fault("HV200", FaultSpec(refuse_auth=True))  # steered from this process
        with pytest.raises(AuthenticationError):
            read_vmhost(manifest, proc.env, "HV200")
        proc.reset_stats()
        assert proc.stats()["hosts"]["HV001"]["http_requests"] == 0
        ports = {h.port for h in proc.info.hosts}
    assert not any(_accepts(port) for port in ports)


def _accepts(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# --- pure parts ----------------------------------------------------------------------------------


def test_faults_parse_into_fault_specs() -> None:
    faults = parse_faults({"HV01": {"hang": True},
                           "HV02": {"cmdlet_faults": [{"cmdlet": "Set-VMHost", "message": "no"}]}})
    assert faults["HV01"] == FaultSpec(hang=True)
    assert faults["HV02"].cmdlet_fault("set-vmhost") is not None
    with pytest.raises(LabError, match="expected a mapping of host name"):
        parse_faults(["HV01"])
    with pytest.raises(LabError, match="HV01: expected a mapping"):
        parse_faults({"HV01": True})


def test_faults_file_may_be_json(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    path.write_text(json.dumps({"HV01": {"drop_after_requests": 3, "drop_once": True}}))
    assert load_faults(path) == {"HV01": FaultSpec(drop_after_requests=3, drop_once=True)}
    with pytest.raises(LabError, match="cannot read faults file"):
        load_faults(tmp_path / "missing.yaml")


def test_one_host_lab_manifest_has_no_group(lab_hosts_only: Lab) -> None:
    info = lab_hosts_only.info
    single = LabInfo(info.workdir, info.mode, info.pid, info.ca, info.control_url, info.subnet,
                     info.hosts[:1], None)
    doc = manifest_document(single)
    assert "groups" not in doc and "directory" not in doc
    assert doc["hosts"] == [{"name": "HV01", "fqdn": "hv01.lab.example",
                             "address": info.hosts[0].address}]


def test_env_file_round_trips_values_a_shell_would_quote(tmp_path: Path) -> None:
    from hvlm_lab.runner.files import write_env

    env = {"HVLM_WINRM_USER": "LAB\\lab admin", "HVLM_WINRM_PASSWORD": "it's $secret"}
    write_env(tmp_path, env)
    assert read_env(tmp_path) == env
    shell = subprocess.run(["sh", "-c", f". {tmp_path}/env; printf %s \"$HVLM_WINRM_PASSWORD\""],
                           capture_output=True, text=True, check=True)
    assert shell.stdout == "it's $secret"


def test_in_process_lab_stops_cleanly_and_records_itself(tmp_path: Path) -> None:
    lab = Lab.start(tmp_path / "lab", hosts=2, directory=False)
    info = read_info(tmp_path / "lab")
    assert info is not None and info.mode == "in-process" and info.pid == os.getpid()
    ports = [h.port for h in info.hosts]
    lab.stop()
    deadline = time.monotonic() + 5
    while any(_accepts(p) for p in ports) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_accepts(p) for p in ports)


def test_a_dc_that_cannot_start_leaves_no_host_listening(
    private_netns: None, tmp_path: Path, request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    import socket

    from hvlm_lab.samba.dc import SambaError
    from tests.lab.samba_fixtures import samba_template_dir

    templates = samba_template_dir(request.config, tmp_path_factory)
    with socket.create_server(("127.0.0.1", 636)) as squatter:  # someone else's LDAPS
        with pytest.raises(SambaError, match="one DC per network namespace"):
            Lab.start(tmp_path / "lab", hosts=2, template_dir=templates)
        assert listening_ports() == {squatter.getsockname()[1]}


def test_http_ntlm_lab_with_message_encryption(tmp_path: Path) -> None:
    from hvlm_lab.runner.lab import Transport

    with Lab.start(tmp_path / "lab", hosts=2, directory=False,
                   transport=Transport.HTTP_NEGOTIATE) as lab:
        manifest = manifest_of(lab.workdir)
        assert manifest["connection"] == {"transport": "http", "auth": "ntlm"}
        assert hvlm("validate", "--strict", str(lab.manifest_path)).returncode == 0
        address, port = host_entry(manifest, "HV02")
        wsman = WSMan(address, port=port, ssl=False, auth="ntlm", encryption="always",
                      username=lab.env["HVLM_WINRM_USER"], password=lab.env["HVLM_WINRM_PASSWORD"],
                      no_proxy=True)
        with RunspacePool(wsman) as pool:
            ps = PowerShell(pool)
            ps.add_cmdlet("Get-VMHost")
            (vmhost,) = ps.invoke()
        assert vmhost.adapted_properties["MaximumVirtualMachineMigrations"] == 2
        assert lab.server.stats("HV02")["http_status"]["200"] >= 4


def lo_addresses() -> str:
    return subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", "lo"], capture_output=True,
                          text=True, check=True).stdout


def test_two_dcs_up_status_replication_down(lab_dir: Path) -> None:
    """`hvlm lab up --dcs 2`: both DCs in the manifest and in status, HV02 reports dc2, an account
    written on dc1 reaches dc2 unless dc2's inbound replication is paused; `down` stops both and
    removes the address it added to lo."""
    up = hvlm("lab", "up", "--dir", str(lab_dir), "--hosts", "2", "--dcs", "2",
              "--host-dc", "HV02=dc2")
    assert "directory: ldaps://dc2.lab.example at 127.0.0.2 (replicating with" in up.stdout
    assert "loopback: added 127.0.0.2/8 to lo" in up.stdout
    assert " 127.0.0.2/8 " in lo_addresses()
    manifest = manifest_of(lab_dir)
    assert manifest["directory"]["servers"] == [
        {"url": "ldaps://dc1.lab.example", "address": "127.0.0.1"},
        {"url": "ldaps://dc2.lab.example", "address": "127.0.0.2"}]
    status = json.loads(hvlm("lab", "status", "--dir", str(lab_dir), "--format", "json").stdout)
    assert status["up"] and status["parts"]["directory-dc2"]["up"], status
    env = read_env(lab_dir)
    dc2 = {**manifest, "directory": {**manifest["directory"],
                                     "servers": manifest["directory"]["servers"][1:]}}
    assert ldap_computer(dc2, env, "HV01")["dNSHostName"] == ["hv01.lab.example"]  # replicated

    planned = subprocess.run([*HVLM, "plan", str(lab_dir / "manifest.yaml")], capture_output=True,
                             text=True, timeout=120, env={**os.environ, **env})
    assert "dc1.lab.example: HV01; dc2.lab.example: HV02." in planned.stdout, planned
    assert hvlm("lab", "replication", "--dir", str(lab_dir), "pause").stdout.startswith(
        "lab replication: dc2 no longer pulls")
    hvlm("lab", "replication", "--dir", str(lab_dir), "resume")
    hvlm("lab", "replication", "--dir", str(lab_dir), "now")

    down = hvlm("lab", "down", "--dir", str(lab_dir))
    assert "stopped lab process" in down.stdout  # which stopped both DCs
    assert "removed 127.0.0.2/8 from lo" in down.stdout, down.stdout
    assert " 127.0.0.2/" not in lo_addresses()
    assert listening_ports() == set()
