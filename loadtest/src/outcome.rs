//! The name a failed request is counted under (`connect_refused`, `bad_response`, `tls_handshake`…): shared by the
//! HTTP/1.1 client, the TLS layer and the statistics, so none of them imports another for it.

/// What a read or parse failure counts as, in the load test's error kinds.
pub type ErrorKind = &'static str;
