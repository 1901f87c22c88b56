//! osprey-exporters
