"""The lab's WinRM server: WSMan (SOAP over HTTP/HTTPS, Basic/NTLM/Kerberos with message
encryption) carrying PSRP (psrpcore's server side), one port per simulated host (`server`), with
faults, counters and a control channel for tests.
"""
