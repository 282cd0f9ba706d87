"""Framework-free rules: keys, tokens, sessions, rotation, passwords. No I/O, no clocks of their own."""
