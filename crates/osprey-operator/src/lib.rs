//! The Kubernetes side of Osprey: the OpenTelemetry Operator's CRDs (`OpenTelemetryCollector`,
//! `Instrumentation`, `opentelemetry.io/v1alpha1`), the collector reconciler, the pod
//! mutating webhook (auto-instrumentation and sidecar injection) and its certificates.
//!
//! Everything that decides *what* the cluster should look like is a pure function over
//! `k8s_openapi` objects ([`crd`], and the modules built on it); the API-facing parts use
//! kube-rs and are tested against a fake API server.

pub mod certs;
pub mod collector;
pub mod controller;
pub mod crd;
pub mod doctor;
pub mod inject;
pub mod install;
pub mod webhook;
