//! Test support: a real broker, unique topic names.
