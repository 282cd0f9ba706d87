"""Framework-free rules: keys, tokens, sessions, rotation, passwords.

No I/O and no clocks of their own: time is always passed in as ``now``.
"""
