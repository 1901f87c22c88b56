//! Merging and splitting payloads by item count, keeping the resource/scope nesting (for the
//! batch processor). Metrics split at metric granularity: the points of one metric stay together.

use osprey_pipeline::Payload;

/// Appends `more` to `into` (same signal; a different signal is returned back).
pub fn append(into: &mut Payload, more: Payload) -> Result<(), Payload> {
    match (into, more) {
        (Payload::Traces(a), Payload::Traces(b)) => a.resource_spans.extend(b.resource_spans),
        (Payload::Metrics(a), Payload::Metrics(b)) => a.resource_metrics.extend(b.resource_metrics),
        (Payload::Logs(a), Payload::Logs(b)) => a.resource_logs.extend(b.resource_logs),
        (_, other) => return Err(other),
    }
    Ok(())
}

/// Splits into payloads of at most `max` items each (`max == 0`: no split).
pub fn split(payload: Payload, max: usize) -> Vec<Payload> {
    if max == 0 || payload.item_count() <= max {
        return vec![payload];
    }
    match payload {
        // Undecoded bytes cannot be split: the batch processor decodes before splitting.
        Payload::RawTraces(r) => vec![Payload::RawTraces(r)],
        Payload::Traces(r) => chunk(
            r.resource_spans,
            max,
            |rs| &mut rs.scope_spans,
            |ss| &mut ss.spans,
            |_| 1,
        )
        .into_iter()
        .map(|resource_spans| Payload::Traces(osprey_model::TraceRequest { resource_spans }))
        .collect(),
        Payload::Logs(r) => chunk(
            r.resource_logs,
            max,
            |rl| &mut rl.scope_logs,
            |sl| &mut sl.log_records,
            |_| 1,
        )
        .into_iter()
        .map(|resource_logs| Payload::Logs(osprey_pipeline::LogsRequest { resource_logs }))
        .collect(),
        Payload::Metrics(r) => chunk(
            r.resource_metrics,
            max,
            |rm| &mut rm.scope_metrics,
            |sm| &mut sm.metrics,
            |m| {
                let one = osprey_pipeline::MetricsRequest {
                    resource_metrics: vec![osprey_model::otlp::metrics::v1::ResourceMetrics {
                        scope_metrics: vec![osprey_model::otlp::metrics::v1::ScopeMetrics {
                            metrics: vec![m.clone()],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                };
                osprey_pipeline::signal::metric_point_count(&one).max(1)
            },
        )
        .into_iter()
        .map(|resource_metrics| {
            Payload::Metrics(osprey_pipeline::MetricsRequest { resource_metrics })
        })
        .collect(),
    }
}

/// Generic chunking over resource -> scope -> items.
fn chunk<R: Clone + Default, S: Clone + Default, I>(
    resources: Vec<R>,
    max: usize,
    scopes: fn(&mut R) -> &mut Vec<S>,
    items: fn(&mut S) -> &mut Vec<I>,
    weight: fn(&I) -> usize,
) -> Vec<Vec<R>> {
    let mut out: Vec<Vec<R>> = Vec::new();
    let mut current: Vec<R> = Vec::new();
    let mut filled = 0usize;
    for mut res in resources {
        let res_scopes = std::mem::take(scopes(&mut res));
        let mut shell = res.clone();
        for mut scope in res_scopes {
            let scope_items = std::mem::take(items(&mut scope));
            let mut scope_shell = scope.clone();
            for item in scope_items {
                let w = weight(&item);
                if filled > 0 && filled + w > max {
                    // Close the current chunk: the open resource/scope go into it first.
                    if !items(&mut scope_shell).is_empty() {
                        scopes(&mut shell).push(std::mem::replace(&mut scope_shell, scope.clone()));
                    }
                    if !scopes(&mut shell).is_empty() {
                        current.push(std::mem::replace(&mut shell, res.clone()));
                    }
                    out.push(std::mem::take(&mut current));
                    filled = 0;
                }
                items(&mut scope_shell).push(item);
                filled += w;
            }
            if !items(&mut scope_shell).is_empty() {
                scopes(&mut shell).push(scope_shell);
            }
        }
        if !scopes(&mut shell).is_empty() {
            current.push(shell);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn req(resources: usize, spans: usize) -> Payload {
        let rs = (0..resources)
            .map(|r| ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: (0..spans)
                        .map(|s| Span {
                            name: format!("r{r}s{s}"),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                schema_url: format!("r{r}"),
                ..Default::default()
            })
            .collect();
        Payload::Traces(osprey_model::TraceRequest { resource_spans: rs })
    }

    #[test]
    fn splits_keep_order_and_nesting() {
        let parts = split(req(3, 5), 4);
        let counts: Vec<usize> = parts.iter().map(|p| p.item_count()).collect();
        assert_eq!(counts, vec![4, 4, 4, 3]);
        let Payload::Traces(second) = &parts[1] else {
            panic!()
        };
        // The second chunk holds r0s4 (resource r0) then r1s0..r1s2 (resource r1).
        assert_eq!(second.resource_spans.len(), 2);
        assert_eq!(second.resource_spans[0].schema_url, "r0");
        assert_eq!(
            second.resource_spans[0].scope_spans[0].spans[0].name,
            "r0s4"
        );
        assert_eq!(second.resource_spans[1].scope_spans[0].spans.len(), 3);
        assert_eq!(split(req(1, 3), 0).len(), 1);
    }

    #[test]
    fn append_joins_same_signal() {
        let mut a = req(1, 2);
        assert!(append(&mut a, req(2, 1)).is_ok());
        assert_eq!(a.item_count(), 4);
        assert!(append(&mut a, Payload::Logs(Default::default())).is_err());
    }
}
