#!/usr/bin/env python3
"""Publishes vLLM KV-cache events the way vLLM's ZmqEventPublisher does, for interop tests.

The msgspec structs mirror vllm/distributed/kv_events.py (field names, order, types); they are
written here so the test needs pyzmq and msgspec only, not vLLM. `--layout array` gives the
positional encoding (msgspec `array_like=True`, vLLM before PR #42892), `--layout map` the
named one that newer vLLM sends.

The same BlockStored batch is published every `--interval` seconds with seq 0, 1, 2, ...
(re-storing blocks is idempotent), so a subscriber that joins late still gets it; the caller
stops the process when it has seen what it needs, or it exits after `--count` batches.
"""

import argparse
import hashlib
import time
from typing import Any

import msgspec
import zmq


def make_types(array_like: bool):
    opts = dict(omit_defaults=True, gc=False, array_like=array_like)

    class EventBatch(msgspec.Struct, **opts):
        ts: float
        events: list[Any]
        data_parallel_rank: int | None = None

    class KVCacheEvent(msgspec.Struct, tag=True, **opts):
        """Base class of the tagged events."""

    class BlockStored(KVCacheEvent):
        block_hashes: list[bytes | int]
        parent_block_hash: bytes | int | None
        token_ids: list[int]
        block_size: int
        lora_id: int | None
        medium: str | None
        lora_name: str | None
        extra_keys: list[tuple[Any, ...] | None] | None = None
        group_idx: int | None = None
        kv_cache_spec_kind: str | None = None
        kv_cache_spec_sliding_window: int | None = None

    class BlockRemoved(KVCacheEvent):
        block_hashes: list[bytes | int]
        medium: str | None
        group_idx: int | None = None

    class AllBlocksCleared(KVCacheEvent):
        pass

    class KVEventBatch(EventBatch):
        events: list[BlockStored | BlockRemoved | AllBlocksCleared]

    return KVEventBatch, BlockStored


def block_hashes(tokens: list[int], block_size: int) -> list[bytes]:
    """Chained SHA-256 per block, as newer vLLM's bytes hashes (values are the engine's own)."""
    out, parent = [], b""
    for i in range(0, len(tokens) - len(tokens) % block_size, block_size):
        h = hashlib.sha256(parent + repr(tokens[i : i + block_size]).encode()).digest()
        out.append(h)
        parent = h
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--endpoint", required=True, help="PUB address to bind, e.g. tcp://127.0.0.1:5557")
    ap.add_argument("--topic", default="")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids (whole blocks)")
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--rank", type=int, default=0, help="data_parallel_rank of the batches")
    ap.add_argument("--lora-name", default=None)
    ap.add_argument("--layout", choices=["array", "map"], default="array")
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--count", type=int, default=500)
    args = ap.parse_args()

    tokens = [int(t) for t in args.tokens.split(",") if t]
    KVEventBatch, BlockStored = make_types(args.layout == "array")
    event = BlockStored(
        block_hashes=block_hashes(tokens, args.block_size),
        parent_block_hash=None,
        token_ids=tokens,
        block_size=args.block_size,
        lora_id=None,
        medium="GPU",
        lora_name=args.lora_name,
    )
    encoder = msgspec.msgpack.Encoder()
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.bind(args.endpoint)
    topic = args.topic.encode("utf-8")
    try:
        for seq in range(args.count):
            batch = KVEventBatch(ts=time.time(), events=[event], data_parallel_rank=args.rank)
            pub.send_multipart((topic, seq.to_bytes(8, "big"), encoder.encode(batch)))
            time.sleep(args.interval)
    finally:
        pub.close(linger=0)


if __name__ == "__main__":
    main()
