/*
 * Osprey's Node.js auto-instrumentation entry point. The operator puts
 * `--require <payload>/autoinstrumentation.js` into the app container's NODE_OPTIONS (the payload
 * is this file next to node_modules/, copied into the pod by the init container), so this runs
 * before the app's own code: it starts the OpenTelemetry Node SDK with every instrumentation of
 * @opentelemetry/auto-instrumentations-node, configured from the OTEL_* environment (exporter
 * endpoint and protocol, service name, resource attributes, propagators, sampler).
 *
 * One default differs from the package's own: unless OTEL_NODE_RESOURCE_DETECTORS is set, only
 * the detectors that read the local process and environment run. The cloud detectors (aws, gcp,
 * azure, alibaba) probe metadata servers over the network at every start; set
 * OTEL_NODE_RESOURCE_DETECTORS=all (e.g. in the Instrumentation's nodejs.env) to get them.
 * The `env` detector comes last so that OTEL_RESOURCE_ATTRIBUTES (the k8s.* attributes the
 * operator sets) wins over anything detected.
 */
'use strict';

if (process.env.OTEL_NODE_RESOURCE_DETECTORS === undefined) {
  process.env.OTEL_NODE_RESOURCE_DETECTORS = 'container,host,os,process,env';
}

require('@opentelemetry/auto-instrumentations-node/register');
