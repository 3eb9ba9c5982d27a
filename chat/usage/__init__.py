"""What model calls cost, and how much each user may spend.

- ``prices``: the price table (settings) and the cost of one call's usage.
- ``ledger``: one row per model call, written in the transaction of what the call
  produced, once (its key), partial usage on a cancel. It owns "nothing counted twice".
- ``quotas``: the limits that apply to a user and whether a turn may start or go on. It owns
  every quota rule; the turn service and the loop only ask it.
- ``reports``: reads of the ledger (the API, the UI's menu, the admin report).
"""
