"""Who is this set of photos of? Majority identity over face embeddings (pure).

A DreamBooth model learns whoever is in the photos; a friend in three of them turns the
result into a blend. So the gate finds the identity most photos agree on, flags the
others, and refuses a set where no single person is a clear majority.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handlers.faces import identity_centroid, l2_normalize


@dataclass(frozen=True)
class IdentityGroups:
    """Result over the photos that reached the identity check (indices into the input)."""

    majority: tuple[int, ...]  # photos of the majority person
    others: tuple[int, ...]  # everyone else (flagged different_person)
    distances: tuple[float, ...]  # each photo's distance to the majority centroid
    second_size: int  # size of the largest group among ``others``
    conflict: bool  # no clear majority: the set shows two (or more) people


def _densest_group(emb: np.ndarray, members: list[int], threshold: float) -> list[int]:
    """Members within ``threshold`` of the member with most such neighbours (ties: the
    smallest summed distance, then the earliest photo), refined once around the group's
    centroid so the seed photo's quirks do not decide the edge cases."""
    if not members:
        return []
    sub = emb[members]
    dist = 1.0 - sub @ sub.T
    near = dist <= threshold
    counts = near.sum(axis=1)
    best = min(range(len(members)),
               key=lambda i: (-int(counts[i]), float(dist[i][near[i]].sum()), i))
    seed = [members[j] for j in np.flatnonzero(near[best])]
    centre = identity_centroid(emb[seed])
    return [m for m in members if 1.0 - float(emb[m] @ centre) <= threshold]


def group_identities(embeddings: list[np.ndarray], threshold: float,
                     majority_margin: float = 0.5) -> IdentityGroups:
    """Split faces into the majority person and the rest.

    ``conflict`` is set when the majority is not clear: it holds half the faces or fewer,
    or the next person has at least ``majority_margin`` times as many photos (e.g. 7 + 5).
    A set of 9 + 3 is fine: the 3 are flagged and the 9 kept."""
    n = len(embeddings)
    if n == 0:
        return IdentityGroups((), (), (), 0, False)
    emb = np.stack([l2_normalize(e) for e in embeddings])
    everyone = list(range(n))
    majority = _densest_group(emb, everyone, threshold)
    if not majority:  # nobody within threshold of anybody: the first face stands alone
        majority = [0]
    centre = identity_centroid(emb[majority])
    distances = tuple(float(1.0 - float(emb[i] @ centre)) for i in everyone)
    in_major = set(majority)
    others = [i for i in everyone if i not in in_major]
    second = len(_densest_group(emb, others, threshold)) if others else 0
    conflict = n > 1 and (2 * len(majority) <= n or second >= majority_margin * len(majority))
    return IdentityGroups(tuple(majority), tuple(others), distances, second, conflict)
