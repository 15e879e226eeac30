"""What the planner's phases share while planning: the manifest indexed, the selection, targets.

Pipeline position: inside the plan stage (hvlm.planner); built once per `build_plan`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from hvlm.errors import HvlmError
from hvlm.model import (
    DelegationService,
    HostSpec,
    Manifest,
    manifest_names,
)

# values toward a peer (hvlm.model.delegation_targets: by service, then name form), and the same
# by their lower-cased form
PeerValues = tuple[tuple[str, ...], dict[str, str]]


@dataclass(frozen=True)
class Context:
    manifest: Manifest
    index: Mapping[str, HostSpec]  # by upper-cased name
    names: frozenset[str]  # every manifest host's short name and FQDN, lower-cased
    selected: frozenset[str] | None  # upper-cased keys, None = all
    selected_names: frozenset[str]  # short names and FQDNs of the selected hosts, lower-cased
    # values toward each peer for one service set, built once: services -> peer name -> values
    toward: dict[tuple[DelegationService, ...], dict[str, PeerValues]] = \
        field(default_factory=dict)
    # fingerprints of the observed objects the changes are computed from: target -> sha256
    targets: dict[str, str] = field(default_factory=dict)

    def is_selected(self, spec: HostSpec) -> bool:
        return self.selected is None or spec.key in self.selected


def make_context(manifest: Manifest, selection: Collection[str] | None) -> Context:
    index = {spec.key: spec for spec in manifest.hosts}
    names = manifest_names(manifest)
    selected: frozenset[str] | None = None
    selected_names: frozenset[str] = names
    if selection is not None:
        selected = frozenset(name.upper() for name in selection)
        unknown = sorted(selected - index.keys())
        if unknown:
            raise HvlmError(f"--host {', '.join(unknown)}: not a host of the manifest")
        chosen = [index[key] for key in selected]
        selected_names = frozenset(n for s in chosen for n in (s.name.lower(), s.fqdn.lower()))
    return Context(manifest, index, names, selected, selected_names)
