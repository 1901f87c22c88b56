//! osprey-query
