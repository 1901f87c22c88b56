//! `osprey collector`: the OpenTelemetry Collector's YAML configuration (parsing, `${env:VAR}`
//! expansion, merging several files, validation that names the bad key), the pipeline graph
//! built from it, the built-in processors that shape flow (batch, memory_limiter), and the
//! service around it (health_check, own telemetry on 8888).
