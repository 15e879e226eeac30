"""The lab's directory: a real Samba AD domain controller (LDAP, LDAPS, Kerberos KDC) on loopback,
provisioned from scratch or copied from a template, with the computer accounts of the hosts.
"""
