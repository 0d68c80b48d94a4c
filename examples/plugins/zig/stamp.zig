//! stamp.zig: a header-stamping interceptor in Zig, on the C SDK
//! (sdk/c/kpipe.h through @cImport, sdk/c/kpipe.c linked in). It sets the
//! header kpipe-stamp to "sdk" on every record and counts the acknowledgements
//! its instance sees (per instance: the host runs several), logging every
//! 1000th at info level. It asks for KPIPE_FEATURE_ACK_NO_RECORD, since it
//! reads only the outcome of an acknowledgement, and for KPIPE_FEATURE_EDITS,
//! with which the SDK returns the header it sets instead of the whole record.
//! Its hook takes a kpipe_view: it only writes, so the SDK never decodes the
//! record.
const c = @cImport(@cInclude("kpipe.h"));

var acked: u64 = 0;

fn init() callconv(.c) i32 {
    _ = c.kpipe_enable_features(c.KPIPE_FEATURE_ACK_NO_RECORD | c.KPIPE_FEATURE_EDITS);
    return c.KPIPE_CONTINUE;
}

fn onSend(v: ?*c.kpipe_view) callconv(.c) i32 {
    c.kpipe_view_set_header(v, c.kpipe_str("kpipe-stamp"), c.kpipe_str("sdk"));
    return c.KPIPE_CONTINUE;
}

fn onAck(_: [*c]const c.kpipe_record, ack: [*c]const c.kpipe_ack) callconv(.c) i32 {
    if (ack.*.@"error".len == 0) {
        acked += 1;
        if (acked % 1000 == 0) c.kpipe_log(c.KPIPE_LOG_INFO, "stamp: another 1000 records delivered");
    }
    return c.KPIPE_CONTINUE;
}

// The ABI exports (sdk/ABI.md section 3), each a call into the SDK.
export fn kpipe_abi_v1() void {}
export fn kpipe_kinds() i32 {
    return c.KPIPE_KIND_INTERCEPTOR;
}
export fn kpipe_buffer(size: i32) i32 {
    return c.kpipe_dispatch_buffer(size);
}
export fn kpipe_init() i64 {
    return c.kpipe_dispatch_init(init);
}
export fn kpipe_on_send(len: i32) i64 {
    return c.kpipe_dispatch_on_send_view(len, onSend);
}
export fn kpipe_on_send_batch(count: i32, len: i32) i64 {
    return c.kpipe_dispatch_on_send_view_batch(count, len, onSend);
}
export fn kpipe_on_ack(len: i32) i64 {
    return c.kpipe_dispatch_on_ack(len, onAck);
}
export fn kpipe_on_ack_batch(count: i32, len: i32) i64 {
    return c.kpipe_dispatch_on_ack_batch(count, len, onAck);
}
