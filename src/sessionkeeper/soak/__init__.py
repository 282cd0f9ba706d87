"""``sessionkeeper soak``: the promise, measured.

N simulated users (each its own :class:`~sessionkeeper.client.SessionKeeper`) send bursts of
guarded requests through a fault-injecting reverse proxy to two real server instances sharing
PostgreSQL (and Redis), while a schedule restarts and kills instances, pauses the store, slows
and breaks the refresh path and skews client clocks. Every request's outcome is recorded, every
side effect is recorded in the database, and the report counts what a user would have noticed:
spurious "session expired", revocations not told at once, lost or duplicated requests, 5xx.

Modules: ``app`` (the guarded API each instance serves), ``effects`` (the side-effect tables),
``proxy`` (the load balancer with fault injection), ``cluster`` (instances, private Redis, the
database, store faults), ``faults`` (the schedule), ``users`` (the simulated users),
``report`` (counts, JSON, markdown), ``plot`` (the PNG), ``harness`` (the run). See
``docs/soak.md``.
"""
