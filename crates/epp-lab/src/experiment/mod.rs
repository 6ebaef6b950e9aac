//! The experiment file and the built-in presets (being written).
