"""Conversation storage: L1 cache (``cache``) over the L2 database (``database``).

Callers use ``HybridStorage``; ``keys`` builds every cache and event-log key.
"""

from chat.storage.hybrid import HybridStorage, get_storage

__all__ = ["HybridStorage", "get_storage"]
