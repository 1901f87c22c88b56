//! osprey-pipeline
