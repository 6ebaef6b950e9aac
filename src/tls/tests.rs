//! tls tests
