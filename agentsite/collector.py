"""The serving process's garbage collector, set for a server that allocates fast.

CPython collects the youngest generation every 700 net allocations of container objects,
and all generations once enough survivors piled up. A daphne process with hundreds of chats
streaming allocates millions of short-lived objects a second: it ran about 500 young
collections a second (~0.6 ms each: a tenth of its CPU), and every few seconds a full
collection that walked the ~200,000 objects Django, the apps and the libraries built at
start (~120 ms, a pause every socket of the process felt).

Those objects live as long as the process. ``tune`` moves them out of the collector's sight
(``gc.freeze``) once the application is built, and collects the youngest generation every
``GC_YOUNG_THRESHOLD`` allocations (20,000: under that load about one young collection a
second, of ~8 ms; a full one now walks only what was made since start, ~50 ms). Reference counting still frees nearly everything at once; only garbage in cycles
waits for a collection, a little longer than before.
"""

from __future__ import annotations

import gc

from django.conf import settings


def tune() -> None:
    """Call once the serving process has built its application."""
    gc.collect()  # what start-up left as garbage goes now, not frozen with the rest
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(settings.GC_YOUNG_THRESHOLD, middle, oldest)
