"""Agent runs detached from sockets, and the per-session event log that sockets replay.

``manager`` starts, cancels and recovers runs; ``publisher`` numbers events into the log
(``eventlog``) and fans them out to the session's group; ``relay`` decides what each socket
is sent.
"""
