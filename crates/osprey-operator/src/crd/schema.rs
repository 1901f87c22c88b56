//! Schema helpers for fields whose content is free-form in the upstream CRDs.

use schemars::{json_schema, Schema, SchemaGenerator};

/// An object whose fields the API server keeps as they are
/// (`x-kubernetes-preserve-unknown-fields`), for upstream blocks Osprey passes through or
/// reads only in part (target allocator, ingress, autoscaler, observability).
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}
