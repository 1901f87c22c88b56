//! osprey-store
