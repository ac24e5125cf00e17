"""Quality buckets: a bounded uniform sample per time bucket, kept on disk, with labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from monitors.quality.buckets import BucketStore
from monitors.quality.labels import DELAY_BUCKETS, LabelTally, join, label_lookup

SECOND_US = 1_000_000


def rows(start_s: int, count: int, offset: int = 0) -> tuple[np.ndarray, ...]:
    ts = (start_s * SECOND_US + np.arange(count) * 1000).astype(np.int64)
    ids = np.array([f"r{offset + i}" for i in range(count)], dtype=object)
    return ts, ids, np.zeros(count, np.int32), np.full((count, 1), 0.5)


def test_a_bucket_keeps_a_bounded_uniform_sample_whatever_the_reads(tmp_path: Path) -> None:
    store = BucketStore(tmp_path, bucket_s=60, sample_rows=500)
    for part in range(10):  # 10 reads of 1000 rows into one bucket
        store.fold(*rows(6000, 1000, offset=1000 * part))
    bucket = store.get(6000, 1)
    assert bucket.seen == 10_000
    assert bucket.rows == 500
    # Uniform over all 10,000: each read contributes about a tenth.
    reads = np.array([int(str(i)[1:]) // 1000 for i in bucket.request_id])
    counts = np.bincount(reads, minlength=10)
    assert counts.min() > 25
    assert counts.max() < 80


def test_buckets_are_kept_on_disk_split_by_time_and_expire(tmp_path: Path) -> None:
    store = BucketStore(tmp_path, bucket_s=60, sample_rows=100)
    ts, ids, row, out = rows(6000, 50)
    ts[25:] += 60 * SECOND_US  # half a minute later: the next bucket
    changed = store.fold(ts, ids, row, out)
    assert sorted(b.start_s for b, _ in changed) == [6000, 6060]
    store.save(b for b, _ in changed)
    again = BucketStore(tmp_path, bucket_s=60, sample_rows=100)
    recent = again.recent(6000)
    assert [(b.start_s, b.rows, b.seen) for b in recent] == [(6060, 25, 25), (6000, 25, 25)]
    assert again.expire(6060) == 1  # the first bucket ended at 6060
    assert [b.start_s for b in again.recent(0)] == [6060]


def test_labels_join_into_the_sample_and_their_delays_are_counted(tmp_path: Path) -> None:
    store = BucketStore(tmp_path, bucket_s=60, sample_rows=100)
    changed = store.fold(*rows(6000, 10))
    received = pd.DataFrame(
        {
            "request_id": ["r1", "r2", "r3", "nobody"],
            "row": [0, 0, 0, 0],
            "label": [1, [0], [1, 2], 1],  # a list of one is one label; of two, unusable
            "received_at": pd.to_datetime([6060, 6120, 6000, 6000], unit="s", utc=True),
        }
    )
    lookup, unusable = label_lookup(received)
    assert unusable == 1
    delays = join(changed, lookup)
    assert sorted(np.round(delays).tolist()) == [60.0, 120.0]  # r1 and r2, not "nobody"
    bucket = store.get(6000, 1)
    assert int(bucket.labelled.sum()) == 2
    tally = LabelTally()
    tally.add_delays(delays)
    assert tally.joined == 2
    # 60 s falls in the le=60 bucket, 120 s in le=600.
    assert tally.delay_counts[DELAY_BUCKETS.index(60.0)] == 1
    assert tally.delay_counts[DELAY_BUCKETS.index(600.0)] == 1
    assert LabelTally.from_json(tally.to_json()) == tally
    # The same labels again change nothing; a replaced one replaces the value.
    assert len(join([(bucket, None)], lookup)) == 0
    again = received.copy()
    again.loc[0, "label"] = 0
    replaced = label_lookup(again)[0]
    assert len(join([(bucket, None)], replaced)) == 0  # not new, so no second delay
    assert bucket.label[list(bucket.request_id).index("r1")] == 0
