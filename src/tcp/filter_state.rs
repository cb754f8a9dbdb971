//! The argument of Envoy's `set_envoy_filter_state` foreign function: the protobuf message
//! `envoy.source.extensions.common.wasm.SetEnvoyFilterStateArguments`
//! (source/extensions/common/wasm/ext/set_envoy_filter_state.proto):
//!
//! ```text
//! string path = 1;      the filter state key, e.g. envoy.tcp_proxy.cluster
//! string value = 2;     the input of that key's object factory (the cluster name)
//! LifeSpan span = 3;    FilterChain = 0, DownstreamRequest = 1, DownstreamConnection = 2
//! ```
//!
//! Three fields do not justify a protobuf library in the module: encoded here by hand.

/// The filter state key `tcp_proxy` reads its per-connection cluster from.
pub const TCP_PROXY_CLUSTER: &str = "envoy.tcp_proxy.cluster";

/// The foreign function Envoy registers for filters to set well-known filter state.
pub const SET_ENVOY_FILTER_STATE: &str = "set_envoy_filter_state";

/// How long the object lives (the proto's `LifeSpan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifeSpan {
    FilterChain = 0,
    DownstreamRequest = 1,
    DownstreamConnection = 2,
}

/// `SetEnvoyFilterStateArguments{path, value, span}` in protobuf wire format. A zero `span` is
/// omitted, as proto3 encoders do (it is the default).
pub fn set_filter_state_arguments(path: &str, value: &str, span: LifeSpan) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len() + value.len() + 8);
    length_delimited(&mut out, 1, path.as_bytes());
    length_delimited(&mut out, 2, value.as_bytes());
    if span as u64 != 0 {
        varint(&mut out, 3 << 3);
        varint(&mut out, span as u64);
    }
    out
}

/// A length-delimited field (wire type 2): key, length, bytes.
fn length_delimited(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A base-128 varint, least significant group first.
fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_path_and_value_as_length_delimited_fields() {
        let bytes = set_filter_state_arguments("k", "v1", LifeSpan::FilterChain);
        assert_eq!(bytes, b"\x0a\x01k\x12\x02v1");
    }

    #[test]
    fn encodes_a_non_default_span_as_varint_field_3() {
        let bytes = set_filter_state_arguments("k", "v", LifeSpan::DownstreamConnection);
        assert_eq!(bytes, b"\x0a\x01k\x12\x01v\x18\x02");
    }

    #[test]
    fn tcp_proxy_cluster_key_matches_protoc_output() {
        // The wire format of {path: "envoy.tcp_proxy.cluster", value: "canary"}: key 0x0a (field 1,
        // length-delimited), length 23, the key; 0x12 (field 2), length 6, the cluster.
        let mut expected = vec![0x0a, 23];
        expected.extend_from_slice(b"envoy.tcp_proxy.cluster");
        expected.extend_from_slice(&[0x12, 6]);
        expected.extend_from_slice(b"canary");
        assert_eq!(
            set_filter_state_arguments(TCP_PROXY_CLUSTER, "canary", LifeSpan::FilterChain),
            expected
        );
    }

    #[test]
    fn long_values_use_multi_byte_lengths() {
        let cluster = "c".repeat(300);
        let bytes = set_filter_state_arguments("k", &cluster, LifeSpan::FilterChain);
        // 300 = 0b10_0101100: 0xac 0x02.
        assert_eq!(&bytes[3..6], &[0x12, 0xac, 0x02]);
        assert_eq!(bytes.len(), 3 + 3 + 300);
    }
}
