//! Outputs of a lab run (being written).
