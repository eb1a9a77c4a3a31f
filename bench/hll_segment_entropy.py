#!/usr/bin/env python3
"""How much a segment's HyperLogLog registers could shrink if coded against the whole traffic's.

A segment's visitors are a subset of the whole traffic's, so at the same precision each of its
registers is at most the whole traffic's register at that index. A coder that stores a segment
cell given the whole traffic's cell needs H(S | T) bits per register instead of H(S). This
simulates one generated hour (419,167 visitors, the history bench's traffic) at precision 12
for segments holding a share f of the visitors and prints both, then the total over 87 cells
whose shares follow the traffic generator's weights (event_reporter/traffic_generator.cc).
Standard library only; about a minute. See bench/README.md, "History (issue 13)".
"""
import math
import random
from collections import Counter

PRECISION = 12
REGISTERS = 1 << PRECISION
VISITORS = 419_167
SHARES = (1.0, 0.9, 0.5, 0.45, 0.4, 0.31, 0.2, 0.1, 0.08, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01,
          0.005, 0.002)
# Shares of the hour's visitors, per dimension value (assumed from the generator's weights).
CELLS = ([.31, .10, .08, .07, .06, .05, .04] + [.03] * 10 +                   # country
         [.49, .45, .06] +                                                     # device
         [1.0, .4, .03, .03] +                                                 # event_type
         [.4, .2, .1, .05, .05, .04, .03, .02, .02] + [.01] * 10 + [.005] * 20 +  # page
         [.5, .2, .1, .1, .05, .02, .02, .01] * 3)                             # referrer, source, campaign


def rank(value, bits):
    """HyperLogLog's rho: the 1-based position of the first set bit of a `bits`-bit value."""
    position = 1
    while position <= bits and not (value >> (bits - position)) & 1:
        position += 1
    return position


def entropy(counts, total):
    return -sum(c / total * math.log2(c / total) for c in counts.values())


def main():
    rng = random.Random(11)
    hashes = [rng.getrandbits(64) for _ in range(VISITORS)]
    placed = [(h & (REGISTERS - 1), rank(h >> PRECISION, 64 - PRECISION)) for h in hashes]
    measured = {}
    print("share  H(S)  H(S|T)  bits per register")
    for share in SHARES:
        segment = [0] * REGISTERS
        whole = [0] * REGISTERS
        for index, value in placed:
            whole[index] = max(whole[index], value)
            if rng.random() < share:
                segment[index] = max(segment[index], value)
        alone = entropy(Counter(segment), REGISTERS)
        given = entropy(Counter(zip(segment, whole)), REGISTERS) - entropy(Counter(whole), REGISTERS)
        measured[share] = (alone, given)
        print(f"{share:<6} {alone:.2f}  {given:.2f}")

    def nearest(share):
        return min(measured, key=lambda s: abs(math.log(s) - math.log(share)))

    alone = sum(measured[nearest(s)][0] for s in CELLS)
    given = sum(measured[nearest(s)][1] for s in CELLS)
    print(f"{len(CELLS)} cells: {alone:.0f} bits per register index alone, {given:.0f} against the "
          f"whole traffic: {100 * (1 - given / alone):.0f}% less")


if __name__ == "__main__":
    main()
