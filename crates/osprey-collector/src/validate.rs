//! Semantic checks of a loaded configuration, before anything starts: every component's type
//! is known and its settings valid, pipelines reference only configured components of a type
//! that supports the pipeline's signal, connectors join pipelines of signals they support, and
//! connectors form no cycle.

use crate::config::{ComponentId, Config, Kind, LoadError, PipelineId};
use crate::factories;
use osprey_pipeline::Signal;
use std::collections::{BTreeMap, BTreeSet};

/// Validates `config`; the error names the file and the key.
pub fn validate(config: &Config) -> Result<(), LoadError> {
    check(config).map_err(|e| config.with_file(e))
}

fn check(config: &Config) -> Result<(), LoadError> {
    // Every configured component: known type, valid settings.
    for kind in Kind::ALL {
        for (id, body) in config.section(kind) {
            let path = format!("{}.{id}", kind.section());
            if factories::find(kind, &id.type_name).is_none() {
                return Err(LoadError::new(
                    path,
                    factories::unknown_type(kind, &id.type_name),
                ));
            }
            factories::validate_body(kind, &id.type_name, body).map_err(|e| {
                let e = e.under(&path);
                LoadError::new(e.path, e.message)
            })?;
        }
    }
    for (i, ext) in config.service.extensions.iter().enumerate() {
        if config.component(Kind::Extension, ext).is_none() {
            return Err(LoadError::new(
                format!("service.extensions[{i}]"),
                format!("references extension {ext:?} which is not configured"),
            ));
        }
    }
    if config.service.pipelines.is_empty() {
        return Err(LoadError::new(
            "service.pipelines",
            "must have at least one pipeline",
        ));
    }
    // Connector use: as exporter in pipelines of signal A, as receiver in pipelines of signal B.
    let mut as_exporter: BTreeMap<&ComponentId, BTreeSet<Signal>> = BTreeMap::new();
    let mut as_receiver: BTreeMap<&ComponentId, BTreeSet<Signal>> = BTreeMap::new();
    for (pid, p) in &config.service.pipelines {
        let base = format!("service.pipelines.{pid}");
        if p.receivers.is_empty() {
            return Err(LoadError::new(
                format!("{base}.receivers"),
                "must have at least one receiver",
            ));
        }
        if p.exporters.is_empty() {
            return Err(LoadError::new(
                format!("{base}.exporters"),
                "must have at least one exporter",
            ));
        }
        for (i, r) in p.receivers.iter().enumerate() {
            let path = format!("{base}.receivers[{i}]");
            if config.component(Kind::Connector, r).is_some() {
                as_receiver.entry(r).or_default().insert(pid.signal);
            } else {
                expect_component(config, Kind::Receiver, r, pid, &path)?;
            }
        }
        let mut seen = BTreeSet::new();
        for (i, pr) in p.processors.iter().enumerate() {
            let path = format!("{base}.processors[{i}]");
            if !seen.insert(pr) {
                return Err(LoadError::new(
                    path,
                    format!("processor {pr:?} is listed twice in this pipeline"),
                ));
            }
            expect_component(config, Kind::Processor, pr, pid, &path)?;
        }
        for (i, e) in p.exporters.iter().enumerate() {
            let path = format!("{base}.exporters[{i}]");
            if config.component(Kind::Connector, e).is_some() {
                as_exporter.entry(e).or_default().insert(pid.signal);
            } else {
                expect_component(config, Kind::Exporter, e, pid, &path)?;
            }
        }
    }
    for (id, _) in config.section(Kind::Connector) {
        let path = format!("connectors.{id}");
        let (ins, outs) = (as_exporter.get(id), as_receiver.get(id));
        match (ins, outs) {
            (None, None) => {}
            (Some(_), None) => {
                return Err(LoadError::new(
                    path,
                    "connector is used as an exporter but not as a receiver of any pipeline",
                ))
            }
            (None, Some(_)) => {
                return Err(LoadError::new(
                    path,
                    "connector is used as a receiver but not as an exporter of any pipeline",
                ))
            }
            (Some(ins), Some(outs)) => {
                for from in ins {
                    if !outs
                        .iter()
                        .any(|to| factories::connector_supports(&id.type_name, *from, *to))
                    {
                        return Err(LoadError::new(
                            path,
                            format!(
                                "connector {id:?} cannot take {from} and emit {} (it supports {})",
                                outs.iter()
                                    .map(|s| s.as_str())
                                    .collect::<Vec<_>>()
                                    .join("/"),
                                supported_pairs(&id.type_name)
                            ),
                        ));
                    }
                }
            }
        }
    }
    check_cycles(config)
}

fn supported_pairs(type_name: &str) -> String {
    let mut out = vec![];
    for a in Signal::ALL {
        for b in Signal::ALL {
            if factories::connector_supports(type_name, a, b) {
                out.push(format!("{a} -> {b}"));
            }
        }
    }
    out.join(", ")
}

fn expect_component(
    config: &Config,
    kind: Kind,
    id: &ComponentId,
    pid: &PipelineId,
    path: &str,
) -> Result<(), LoadError> {
    if config.component(kind, id).is_none() {
        return Err(LoadError::new(
            path,
            format!(
                "references {} {:?} which is not configured",
                kind.singular(),
                id.to_string()
            ),
        ));
    }
    let supports =
        factories::find(kind, &id.type_name).is_some_and(|spec| spec.signals.contains(&pid.signal));
    if !supports {
        return Err(LoadError::new(
            path,
            format!(
                "{} {:?} does not support {} (pipeline {pid})",
                kind.singular(),
                id.to_string(),
                pid.signal
            ),
        ));
    }
    Ok(())
}

/// Pipelines joined by connectors must not loop back on themselves.
fn check_cycles(config: &Config) -> Result<(), LoadError> {
    let pipes = &config.service.pipelines;
    let next_of = |pid: &PipelineId| -> Vec<&PipelineId> {
        let p = &pipes[pid];
        let conns: Vec<&ComponentId> = p
            .exporters
            .iter()
            .filter(|e| config.component(Kind::Connector, e).is_some())
            .collect();
        pipes
            .iter()
            .filter(|(_, q)| q.receivers.iter().any(|r| conns.contains(&r)))
            .map(|(id, _)| id)
            .collect()
    };
    fn visit<'a>(
        pid: &'a PipelineId,
        next_of: &dyn Fn(&PipelineId) -> Vec<&'a PipelineId>,
        stack: &mut Vec<&'a PipelineId>,
        done: &mut BTreeSet<&'a PipelineId>,
    ) -> Result<(), LoadError> {
        if done.contains(pid) {
            return Ok(());
        }
        if stack.contains(&pid) {
            let cycle: Vec<String> = stack.iter().map(|p| p.to_string()).collect();
            return Err(LoadError::new(
                "service.pipelines",
                format!("connectors form a cycle: {} -> {pid}", cycle.join(" -> ")),
            ));
        }
        stack.push(pid);
        for n in next_of(pid) {
            visit(n, next_of, stack, done)?;
        }
        stack.pop();
        done.insert(pid);
        Ok(())
    }
    let mut done = BTreeSet::new();
    for pid in pipes.keys() {
        visit(pid, &next_of, &mut vec![], &mut done)?;
    }
    Ok(())
}
