"""The doctor: explain why a token, a deployment's configuration or a live endpoint refuses a
signed-in user (``sessionkeeper doctor token | config | probe``, docs/doctor.md).

Each command produces a :class:`~sessionkeeper.doctor.findings.Report` of facts and findings;
``render`` prints it. The checks reuse the guard's parsing, key loading and verifier, and the
server's settings models, so the doctor judges exactly as the running code would.
"""
