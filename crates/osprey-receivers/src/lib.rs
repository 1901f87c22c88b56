//! osprey-receivers
