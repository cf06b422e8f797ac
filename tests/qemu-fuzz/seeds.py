#!/usr/bin/env python3
"""seeds.py - write seed inputs for QEMU's virtio-tmem-fuzz target.

Usage: tests/qemu-fuzz/seeds.py DIR

The input format is the one virtio-tmem-fuzz.c parses (see its comments):
a feature byte, then commands.  Each seed reaches one part of the device
that random bytes find slowly: a full put/get round trip, pages split at
odd boundaries, an indirect table, the second queue, persistent pages
with credits, the pool limit, resets and config reads, a reset racing
with a kick, a raw chain.
"""
import os
import sys

NEW_POOL, DESTROY, PUT, GET, FLUSH_PAGE, FLUSH_OBJ, FLUSH_POOL = range(1, 8)
ALL_FEATURES = 0x1F      # persistent, shared, mq, indirect, event idx
MAL_INDIRECT = 0x40
MAL_NO_KICK = 0x80
NOTIFY_NO_WAIT = 0x83    # command 3, queue 0, not waited for


def op(opcode, pool=0, key=0, flags=0):
    """An op: opcode, flags (bits 3-4), pool selector, key byte."""
    return bytes([opcode | (flags << 3), pool, key])


def seg(aim=0, kind=0, arg=0, lenarg=None):
    """A segment: length kind (0 rest, 1 page, 2 hdr, 3 op, 4/5/6 from a
    byte), aim (0 RAM, 1 odd RAM, ...)."""
    b = bytes([kind | (aim << 3)])
    if kind in (4, 5, 6):
        b += bytes([lenarg or 0])
    return b + bytes([arg])


def batch(ops, pages, out_segs=None, in_segs=None, queue=0, mal=0):
    """A batch command: ops, one page byte per PUT, segments."""
    b = bytes([0, (queue << 4) | len(ops), mal])
    b += b"".join(ops) + bytes(pages)
    b += out_segs if out_segs is not None else seg()
    b += in_segs if in_segs is not None else seg()
    return b


def seeds():
    s = {}
    pools = [op(NEW_POOL), op(NEW_POOL, flags=1), op(NEW_POOL, 7, flags=2)]
    puts = [op(PUT, 0, 0x10), op(PUT, 0, 0x11), op(PUT, 0, 0x21)]
    gets = [op(GET, 0, 0x11), op(GET, 0, 0x99), op(GET, 0, 0x10, flags=1)]
    s["round-trip"] = bytes([ALL_FEATURES]) + batch(pools, []) + \
        batch(puts, [1, 3, 5]) + batch(gets, []) + \
        batch([op(FLUSH_PAGE, 0, 0x21), op(FLUSH_OBJ, 0, 0x10),
               op(FLUSH_POOL, 0), op(DESTROY, 0)], [])
    # header, ops and pages over many small descriptors, pages unaligned
    split_out = seg(0, 2) + seg(1, 3, 5) + seg(0, 4, 0, 31) + \
        seg(1, 5, 9, 1) + seg(0, 1) + seg(1, 0, 77)
    split_in = seg(0, 6, 0, 3) + seg(1, 4, 3, 100) + seg(0, 5, 0, 2) + seg()
    s["split"] = bytes([ALL_FEATURES]) + batch(pools[:1], []) + \
        batch(puts[:2], [3, 5], split_out, seg()) + \
        batch(gets[:2], [], seg(), split_in)
    s["indirect"] = bytes([ALL_FEATURES]) + batch(pools[:1], []) + \
        batch(puts, [1, 3, 5], seg(0, 3) + seg(), seg(0, 2) + seg(),
              mal=MAL_INDIRECT) + \
        batch(gets, [], seg(), seg(0, 2) + seg(1, 1, 3) + seg(),
              mal=MAL_INDIRECT)
    # persistent pool on queue 1, credited puts
    s["persistent-mq"] = bytes([ALL_FEATURES]) + \
        batch([op(NEW_POOL, flags=1)], [], queue=1) + \
        batch([op(PUT, 0, k, flags=1) for k in range(8)],
              [3] * 8, queue=1) + \
        batch([op(GET, 0, k, flags=1) for k in range(8)], [], queue=1)
    # fill the 1 MiB pool with half-compressible pages (the pool drops
    # incompressible ephemeral ones: page byte 2 mod 4)
    fill = bytes([ALL_FEATURES]) + batch([op(NEW_POOL)] * 3, [])
    for n in range(48):
        fill += batch([op(PUT, n % 3, (n // 3 * 8 + k) & 0xF7)
                       for k in range(8)], [3 + 4 * k for k in range(8)])
    fill += bytes([6 | 8 * 20])                      # a clock step
    s["pool-full"] = fill
    # config reads of every width, a reset to other features, a notify
    cfg = bytes([ALL_FEATURES])
    for off in range(0, 40, 2):
        for w in range(4):
            cfg += bytes([5, (off << 2) | w])
    cfg += bytes([4, 0x00]) + batch(pools[:1], []) + bytes([3, 3 | 8])
    s["config-reset"] = cfg
    # a chain left on the ring, kicked without waiting, then a reset (as
    # from another vCPU): the reset races with the queue handler
    s["kick-reset"] = bytes([ALL_FEATURES]) + \
        batch(pools[:1], [], mal=MAL_NO_KICK) + bytes([NOTIFY_NO_WAIT]) + \
        bytes([4, ALL_FEATURES]) + batch(pools[:1], [])
    # a raw chain: two descriptors, a writable one aimed at the BAR
    s["raw"] = bytes([ALL_FEATURES, 7, 1,
                      1, 0, 16, 0, 0,
                      2 | (3 << 3), 0, 0, 1, 1])
    return s


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    os.makedirs(sys.argv[1], exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(sys.argv[1], name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
