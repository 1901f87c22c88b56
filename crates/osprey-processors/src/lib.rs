//! Processors of the collector pipeline that look at or change the data itself: attributes,
//! resource, filter, probabilistic_sampler, tail_sampling, k8sattributes. Each is a
//! [`osprey_pipeline::Consumer`] that hands what it keeps to the next consumer.
