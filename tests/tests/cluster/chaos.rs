//! A chaos run.
