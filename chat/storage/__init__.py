"""Conversation storage: L1 cache (``cache``) over the L2 database (``database``).

Callers use ``HybridStorage`` (the process's is ``chat.runtime.get().storage``); ``keys``
builds every cache and event-log key.
"""

from chat.storage.hybrid import HybridStorage

__all__ = ["HybridStorage"]
