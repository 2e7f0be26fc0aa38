"""Seeds for every random step of a campaign, from :class:`numpy.random.SeedSequence` spawn keys.

``seed_for(seed, PURPOSE, i, j, ...)`` gives each (purpose, iteration, structure, temperature,
replica, ...) an independent, well-mixed stream that does not collide with another's, instead
of hand-written arithmetic; the same key always gives the same seed. The value lies in
1 … 2³¹−1, which LAMMPS' velocity command and NumPy generators both accept.
"""

from __future__ import annotations

import numpy as np

#: first key of each use, so that different uses never share a stream
FIT, STARTING_MD, STARTING_COPIES, EXPLORATION, PRODUCTION, FIDELITY, ANNEAL, PROBES = range(8)


def seed_for(seed: int, *key: int) -> int:
    """The seed of the stream ``key`` (integers) under the campaign seed ``seed``."""
    ss = np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key))
    return int(ss.generate_state(1)[0]) % (2 ** 31 - 1) + 1
