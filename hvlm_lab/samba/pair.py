"""Two replicating lab domain controllers: DC1 provisions the domain, DC2 joins it as a DC (DRS).

Part of the lab (not the reconcile pipeline). `hvlm lab up --dcs 2` (runner/lab.py) and the
two-DC tests (tests/integration/test_replication.py) build a `DCPair`; hvlm then sees two
directory servers whose contents agree only after replication, as in any real domain.

The recipe is the one measured in ../shared/notes/LAB.md ("Two replicating Samba DCs"):
- each DC on its own loopback address (127.0.0.N must be ADDED to lo: Samba ignores the 127/8
  route), `bind interfaces only`;
- names: dc1/dc2.<domain> in a private /etc/hosts, the two DCs' own DNS in a private
  resolv.conf; only the Samba processes (server and samba-tool) see them, through a private
  mount namespace per process (config.with_names): the caller's namespace is untouched;
- provision DC1, start it, `samba_dnsupdate` (provision and join skip 127/8 addresses), join DC2,
  start it, `samba_dnsupdate` + `samba_spnupdate`, `drs kcc` on DC2 then DC1, a forced
  `drs replicate` both ways for the five naming contexts;
- the prefork process model with one child (not `-M single`), change notification after 1 s.

Building a pair takes ~20 s; a stopped, linked pair is kept as a template (both databases, no
absolute path inside: smb.conf is written per workdir) and copied next time (~1 s + start).

Lag on demand: `pause_inbound()` / `resume_inbound()` set DISABLE_INBOUND_REPL on DC2 (as an
administrator would on Windows with repadmin /options); `replicate_now()` forces a pull.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from hvlm_lab.pki import LabCA
from hvlm_lab.samba.config import (
    LAB_ADMIN_PASSWORD,
    DCConfig,
    SambaError,
    path_options,
    run_tool,
    which,
)
from hvlm_lab.samba.dc import SambaDC
from hvlm_lab.samba.provision import provision_into, write_configs, write_tls

PAIR_ADDRESSES = ("127.0.0.1", "127.0.0.2")  # `hvlm lab up --dcs 2`
PAIR_FILE = "samba-pair.json"
_TEMPLATE_VERSION = "1"


def on_loopback(address: str) -> bool:
    shown = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", "lo"], capture_output=True,
                           text=True, check=False).stdout
    return f" {address}/" in shown


def ensure_loopback(address: str) -> bool:
    """Add `address`/8 to lo unless it is there (Samba listens only on configured interfaces);
    True when it was added (this changes the network namespace: `remove_loopback` undoes it)."""
    if on_loopback(address):
        return False
    added = subprocess.run(["ip", "addr", "add", f"{address}/8", "dev", "lo"],
                           capture_output=True, text=True, check=False)
    if added.returncode != 0:
        raise SambaError(f"cannot add {address} to lo (root needed): {added.stderr.strip()}")
    return True


def remove_loopback(address: str) -> bool:
    """Remove `address`/8 from lo (what ensure_loopback added); True when it was there."""
    if not on_loopback(address):
        return False
    removed = subprocess.run(["ip", "addr", "del", f"{address}/8", "dev", "lo"],
                             capture_output=True, text=True, check=False)
    if removed.returncode != 0:
        raise SambaError(f"cannot remove {address} from lo: {removed.stderr.strip()}")
    return True


@dataclasses.dataclass
class DCPair:
    """DC1 and DC2 of one domain, replicating with each other."""

    dc1: SambaDC
    dc2: SambaDC
    workdir: Path
    added_addresses: tuple[str, ...] = ()  # added to lo by create(): remove_loopback at the end

    # ---- build -------------------------------------------------------------------------------
    @classmethod
    def create(cls, workdir: Path, *, ca: LabCA, addresses: tuple[str, str] = PAIR_ADDRESSES,
               admin_password: str = LAB_ADMIN_PASSWORD, template_dir: Path | None = None,
               ) -> DCPair:
        """Two started, replicating DCs in `workdir` (from a template copy when there is one)."""
        workdir = Path(workdir).resolve()
        names = workdir / "names"
        cfgs = [DCConfig(workdir / f"dc{n}", admin_password=admin_password, host_name=f"DC{n}",
                         address=address, replicating=True, names_dir=names)
                for n, address in ((1, addresses[0]), (2, addresses[1]))]
        added = tuple(a for a in addresses if ensure_loopback(a))
        _write_names(names, cfgs)
        for cfg in cfgs:
            for directory in (cfg.workdir, cfg.run_dir, cfg.log_dir, cfg.keytab_dir):
                directory.mkdir(parents=True, exist_ok=True)
        cached = Path(template_dir).resolve() / _template_key(cfgs) if template_dir else None
        pair = cls(SambaDC(cfgs[0]), SambaDC(cfgs[1]), workdir, added)
        if cached is not None and cached.is_dir():
            for n, cfg in enumerate(cfgs, start=1):
                shutil.copytree(cached / f"dc{n}", cfg.target_dir, symlinks=True)
                write_tls(cfg, ca)
                write_configs(cfg)
            pair.start()
        else:
            pair._build(ca)
            if cached is not None:
                pair._save_template(cached)
        pair._save_state()
        return pair

    def _build(self, ca: LabCA) -> None:
        cfg1, cfg2 = self.dc1.config, self.dc2.config
        provision_into(cfg1)
        write_tls(cfg1, ca)
        write_configs(cfg1)
        self.dc1.start()
        self._dnsupdate(cfg1)
        self._join(cfg2)
        write_tls(cfg2, ca)
        write_configs(cfg2)
        self.dc2.start()
        self._dnsupdate(cfg2)
        for cfg in (cfg1, cfg2):
            self._tool(cfg, [which("samba_spnupdate") or "samba_spnupdate", "-s",
                             str(cfg.smb_conf)], "samba_spnupdate")
        self.link()

    def _join(self, cfg: DCConfig) -> None:
        empty = cfg.workdir / "empty-smb.conf"
        empty.write_text("")
        argv = ["samba-tool", "domain", "join", cfg.dns_domain, "DC",
                f"--server={self.dc1.config.address}",
                f"-U{cfg.domain}\\Administrator%{cfg.admin_password}", "-s", str(empty),
                f"--targetdir={cfg.target_dir}", "--dns-backend=SAMBA_INTERNAL",
                f"--option=netbios name = {cfg.host_name}"]
        argv += [f"--option={key} = {value}" for key, value in path_options(cfg).items()]
        self._tool(cfg, argv, "samba-tool domain join", timeout=300)
        empty.unlink()

    def _dnsupdate(self, cfg: DCConfig) -> None:
        """Its A record and <ntds-guid>._msdcs CNAME (provision/join skip 127/8 addresses)."""
        self._tool(cfg, [which("samba_dnsupdate") or "samba_dnsupdate", "-s", str(cfg.smb_conf),
                         "--use-samba-tool", f"--current-ip={cfg.address}",
                         f"--rpc-server-ip={self.dc1.config.address}"], "samba_dnsupdate")

    def link(self) -> None:
        """Replication links: KCC on DC2 first, then DC1; then a forced pull both ways."""
        for dc in (self.dc2, self.dc1):
            self._drs(dc.config, ["kcc", dc.config.dc_fqdn], "drs kcc")
        for nc in self.naming_contexts:
            for to, source in ((self.dc2, self.dc1), (self.dc1, self.dc2)):
                self._drs(to.config, ["replicate", to.config.dc_fqdn, source.config.dc_fqdn, nc],
                          f"drs replicate {nc} to {to.config.host_name}")

    @property
    def naming_contexts(self) -> list[str]:
        base = self.dc1.config.base_dn
        return [base, f"CN=Configuration,{base}", f"CN=Schema,CN=Configuration,{base}",
                f"DC=DomainDnsZones,{base}", f"DC=ForestDnsZones,{base}"]

    def _save_template(self, cached: Path) -> None:
        """Stop both, copy the two databases into the cache, start again."""
        self.stop()
        scratch = cached.with_name(f".build-{os.getpid()}-{time.monotonic_ns()}")
        for n, dc in ((1, self.dc1), (2, self.dc2)):
            shutil.copytree(dc.config.target_dir, scratch / f"dc{n}", symlinks=True,
                            ignore=_sockets)
        with contextlib.suppress(OSError):  # a concurrent builder may have won the race
            scratch.rename(cached)
        shutil.rmtree(scratch, ignore_errors=True)
        self.start()

    # ---- run ---------------------------------------------------------------------------------
    def start(self) -> None:
        self.dc1.start()
        self.dc2.start()
        self._save_state()

    def stop(self) -> None:
        for dc in (self.dc2, self.dc1):
            dc.stop()
        self._save_state()

    @property
    def dcs(self) -> tuple[SambaDC, SambaDC]:
        return self.dc1, self.dc2

    def pause_inbound(self) -> None:
        """DC2 stops pulling changes (DISABLE_INBOUND_REPL): writes to DC1 stay on DC1."""
        self._options("+DISABLE_INBOUND_REPL")

    def resume_inbound(self) -> None:
        """DC2 pulls again (at the next notification or periodic pull, within ~10 s)."""
        self._options("-DISABLE_INBOUND_REPL")

    def replicate_now(self, *, into: int = 2) -> None:
        """Force DC2 (`into=1`: DC1) to pull the domain partition from the other DC now (DC2
        fails while paused)."""
        to, source = (self.dc2, self.dc1) if into == 2 else (self.dc1, self.dc2)
        cfg, other = to.config, source.config
        self._drs(cfg, ["replicate", cfg.dc_fqdn, other.dc_fqdn, cfg.base_dn], "drs replicate")

    def _options(self, option: str) -> None:
        cfg = self.dc2.config
        self._drs(cfg, ["options", cfg.dc_fqdn, f"--dsa-option={option}"], f"drs options {option}")

    def _drs(self, cfg: DCConfig, args: list[str], step: str) -> None:
        self._tool(cfg, ["samba-tool", "drs", *args, "-s", str(cfg.smb_conf),
                         f"-UAdministrator%{cfg.admin_password}"], step)

    @staticmethod
    def _tool(cfg: DCConfig, argv: list[str], step: str, timeout: float = 120) -> None:
        run_tool(argv, step, timeout=timeout, names_dir=cfg.names_dir)

    # ---- state (for `hvlm lab down` from another process) -------------------------------------
    def _save_state(self) -> None:
        state = {"workdir": str(self.workdir),
                 "dcs": [str(self.dc1.config.workdir), str(self.dc2.config.workdir)],
                 "added_addresses": list(self.added_addresses)}
        (self.workdir / PAIR_FILE).write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def attach(cls, workdir: Path) -> DCPair:
        state = json.loads((Path(workdir) / PAIR_FILE).read_text())
        dc1, dc2 = (SambaDC.attach(Path(d)) for d in state["dcs"])
        return cls(dc1, dc2, Path(state["workdir"]), tuple(state.get("added_addresses", ())))

    def remove_addresses(self) -> list[str]:
        """Remove from lo the addresses create() added (after stop()); the ones removed."""
        return [a for a in self.added_addresses if remove_loopback(a)]


def _sockets(directory: str, names: list[str]) -> set[str]:
    """What a stopped DC leaves that is no file (ldapi, msg.sock/<pid>): not copied."""
    return {n for n in names if not (Path(directory, n).is_file() or Path(directory, n).is_dir())
            or n == "msg.sock"}


def _write_names(names: Path, cfgs: list[DCConfig]) -> None:
    names.mkdir(parents=True, exist_ok=True)
    lines = ["127.0.0.1\tlocalhost"]
    lines += [f"{cfg.address}\t{cfg.dc_fqdn} {cfg.host_name.lower()}" for cfg in cfgs]
    (names / "hosts").write_text("\n".join(lines) + "\n")
    (names / "resolv.conf").write_text(
        "".join(f"nameserver {cfg.address}\n" for cfg in cfgs) + f"search {cfgs[0].dns_domain}\n")


def _template_key(cfgs: list[DCConfig]) -> str:
    version = run_tool(["samba", "--version"], "samba --version").stdout.strip()
    parts = [_TEMPLATE_VERSION, version, *(f"{c.realm} {c.domain} {c.admin_password} "
                                           f"{c.host_name} {c.address}" for c in cfgs)]
    return "pair-" + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
