//! keyhash.zig: a key-hash partitioner in Zig, on the C SDK (sdk/c/kpipe.h
//! through @cImport, sdk/c/kpipe.c linked in). A keyed record goes where
//! Kafka's Java client puts it, (murmur2(key) & 0x7fffffff) % n; a null key
//! goes to the host's default partitioner. It needs only the key, so init asks
//! for KPIPE_FEATURE_PARTITION_KEY and fails without it.
const c = @cImport(@cInclude("kpipe.h"));

fn murmur2(key: []const u8) u32 {
    const m: u32 = 0x5bd1e995;
    var h: u32 = 0x9747b28c ^ @as(u32, @intCast(key.len));
    var i: usize = 0;
    while (i + 4 <= key.len) : (i += 4) {
        var k: u32 = @as(u32, key[i]) | @as(u32, key[i + 1]) << 8 | @as(u32, key[i + 2]) << 16 | @as(u32, key[i + 3]) << 24;
        k *%= m;
        k ^= k >> 24;
        h = (h *% m) ^ (k *% m);
    }
    const rest = key.len - i;
    if (rest >= 3) h ^= @as(u32, key[i + 2]) << 16;
    if (rest >= 2) h ^= @as(u32, key[i + 1]) << 8;
    if (rest >= 1) {
        h ^= key[i];
        h *%= m;
    }
    h ^= h >> 13;
    h *%= m;
    return h ^ (h >> 15);
}

fn init() callconv(.c) i32 {
    if (c.kpipe_enable_features(c.KPIPE_FEATURE_PARTITION_KEY) & c.KPIPE_FEATURE_PARTITION_KEY == 0) {
        c.kpipe_set_error("keyhash: the host does not offer KPIPE_FEATURE_PARTITION_KEY");
        return c.KPIPE_FAIL;
    }
    return c.KPIPE_CONTINUE;
}

fn partition(r: [*c]const c.kpipe_record, n: i32) callconv(.c) i32 {
    const key = r.*.key;
    if (key.len < 0) return c.KPIPE_DEFAULT_PARTITION;
    const bytes: []const u8 = if (key.len == 0) &.{} else key.ptr[0..@intCast(key.len)];
    return @intCast((murmur2(bytes) & 0x7fffffff) % @as(u32, @intCast(n)));
}

export fn kpipe_abi_v1() void {}
export fn kpipe_kinds() i32 {
    return c.KPIPE_KIND_PARTITIONER;
}
export fn kpipe_buffer(size: i32) i32 {
    return c.kpipe_dispatch_buffer(size);
}
export fn kpipe_init() i64 {
    return c.kpipe_dispatch_init(init);
}
export fn kpipe_partition(n: i32, len: i32) i64 {
    return c.kpipe_dispatch_partition(n, len, partition);
}
export fn kpipe_partition_batch(count: i32, len: i32) i64 {
    return c.kpipe_dispatch_partition_batch(count, len, partition);
}
