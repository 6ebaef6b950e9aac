//! Request generation and traces (being written).
