#!/usr/bin/env python3
"""What SQLite's random call-id index costs a writer, and what a log-structured one would.

A measurement for issue 7 (docs/PERFORMANCE.md, session 28), not part of the gateway: SQLite
alone, with the gateway's settings (WAL, synchronous FULL, a 16 MiB page cache, a passive
checkpoint after each commit as the gateway's runs every 300 ms), on an index of 16-byte random
keys like `call_records.call_key`:

  direct  the new keys go into the big index, in transactions of 16,384 (the gateway's
          largest group commit): each commit writes every leaf it changed to the log, and the
          checkpoint writes it back;
  lsm     the new keys go into a small index of recent keys, in the same transactions, and are
          then merged into the big one in one sorted pass (INSERT ... ORDER BY key).

It prints the time, the keys written a second (with the merge) and the bytes the process wrote
per key (/proc/self/io: log, checkpoint and merge).

    pip install pysqlite3-binary        # Debian 12's sqlite3 module works too
    scripts/sqlite-call-index.py direct 1500000 262144
    scripts/sqlite-call-index.py lsm 1500000 262144
"""

import os
import sys
import tempfile
import time

try:
    import pysqlite3.dbapi2 as sqlite
except ImportError:
    import sqlite3 as sqlite

BATCH = 16384


def written_bytes():
    with open("/proc/self/io") as io:
        for line in io:
            if line.startswith("write_bytes"):
                return int(line.split()[1])
    return 0


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("direct", "lsm"):
        sys.exit("usage: sqlite-call-index.py direct|lsm <keys already there> <new keys>")
    mode, there, new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with tempfile.TemporaryDirectory() as directory:  # TMPDIR, else /tmp
        db = sqlite.connect(os.path.join(directory, "keys.db"), isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "cache_size=-16384",
                       "wal_autocheckpoint=16000", "temp_store=memory"):
            db.execute("PRAGMA " + pragma)
        for table in ("keys", "recent"):
            db.execute(f"CREATE TABLE {table} (k BLOB PRIMARY KEY, r INTEGER NOT NULL) WITHOUT ROWID")
        # The big index, grown by random inserts as a running gateway's is.
        for start in range(0, there, 100_000):
            db.execute("BEGIN")
            db.executemany("INSERT INTO keys VALUES (?, ?)",
                           ((os.urandom(16), i) for i in range(start, min(there, start + 100_000))))
            db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        os.sync()

        before, started, merge = written_bytes(), time.monotonic(), 0.0
        target = "keys" if mode == "direct" else "recent"
        for start in range(0, new, BATCH):
            rows = [(os.urandom(16), there + start + i) for i in range(min(BATCH, new - start))]
            db.execute("BEGIN")
            db.executemany(f"INSERT INTO {target} VALUES (?, ?)", rows)
            db.execute("COMMIT")
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        if mode == "lsm":
            merge_started = time.monotonic()
            db.execute("BEGIN")
            db.execute("INSERT INTO keys SELECT k, r FROM recent ORDER BY k")
            db.execute("DELETE FROM recent")
            db.execute("COMMIT")
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            merge = time.monotonic() - merge_started
        os.sync()
        elapsed = time.monotonic() - started
        per_key = (written_bytes() - before) / new
        db.close()
    print(f"{mode}: {there:,} keys there, {new:,} new: {elapsed:.2f} s, "
          f"{new / elapsed:,.0f} keys/s (merge {merge:.2f} s), {per_key:,.0f} bytes written a key")


if __name__ == "__main__":
    main()
