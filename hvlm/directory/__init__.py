"""hvlm.directory: the hosts' computer accounts in Active Directory, over ldap3.

Pipeline position: observed state (DelegationState per host, for the planner) and the directory
writes of apply. `session` holds the only ldap3 connection; `parse` is pure (filter, parser,
modify builder); `errors` maps ldap3 to hvlm.errors in one place.

    with DirectorySession(manifest.directory) as directory:      # credentials from the env
        state = directory.read([h.name for h in manifest.hosts])  # ONE search
        directory.write(state.account("HV01"), add=[...], delete=[...], protocol_transition=True)
"""

from hvlm.directory.session import DirectorySession, LdapCounters, SimpleCredentials, WriteResult

__all__ = ["DirectorySession", "LdapCounters", "SimpleCredentials", "WriteResult"]
