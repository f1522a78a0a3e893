//! Optional NetworkPolicy: sink pods may reach only the brokers' and the database's ports, and DNS.

use std::collections::{BTreeMap, BTreeSet};

use adbsink_crd::{AnalyticDBSink, LABEL_SINK, sink_deployment_name};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::build::meta::child_meta;
use crate::error::Result;

const DNS_PORT: i32 = 53;

/// Egress by port only: brokers and databases are usually addressed by DNS names outside the
/// cluster, which a NetworkPolicy cannot select by address.
pub fn network_policy(sink: &AnalyticDBSink) -> Result<NetworkPolicy> {
    let name = sink.name_any();
    let mut tcp_ports: BTreeSet<i32> = sink
        .spec
        .source
        .bootstrap_servers
        .split(',')
        .filter_map(|server| server.trim().rsplit_once(':'))
        .filter_map(|(_, port)| port.parse::<i32>().ok())
        .collect();
    tcp_ports.insert(i32::from(sink.spec.destination.port_or_default()));
    let service_ports = tcp_ports.into_iter().map(|p| port("TCP", p)).collect();
    Ok(NetworkPolicy {
        metadata: child_meta(sink, sink_deployment_name(&name))?,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(LABEL_SINK.to_string(), name)])),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Egress".to_string()]),
            egress: Some(vec![
                NetworkPolicyEgressRule {
                    ports: Some(service_ports),
                    ..NetworkPolicyEgressRule::default()
                },
                NetworkPolicyEgressRule {
                    ports: Some(vec![port("UDP", DNS_PORT), port("TCP", DNS_PORT)]),
                    ..NetworkPolicyEgressRule::default()
                },
            ]),
            ..NetworkPolicySpec::default()
        }),
    })
}

fn port(protocol: &str, number: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(number)),
        protocol: Some(protocol.to_string()),
        ..NetworkPolicyPort::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testing::sink;

    #[test]
    fn allows_broker_database_and_dns_ports_only() {
        let policy = network_policy(&sink("orders")).expect("policy");
        assert_eq!(policy.metadata.name.as_deref(), Some("orders-sink"));
        let spec = policy.spec.expect("spec");
        assert_eq!(spec.policy_types, Some(vec!["Egress".to_string()]));
        let rules = spec.egress.expect("egress");
        let ports = |i: usize| -> Vec<(String, i32)> {
            rules[i]
                .ports
                .iter()
                .flatten()
                .map(|p| {
                    let n = match p.port {
                        Some(IntOrString::Int(n)) => n,
                        _ => -1,
                    };
                    (p.protocol.clone().unwrap_or_default(), n)
                })
                .collect()
        };
        assert_eq!(
            ports(0),
            vec![
                ("TCP".to_string(), 3306),
                ("TCP".to_string(), 9092),
                ("TCP".to_string(), 9093)
            ]
        );
        assert_eq!(
            ports(1),
            vec![("UDP".to_string(), 53), ("TCP".to_string(), 53)]
        );
        assert!(rules.iter().all(|r| r.to.is_none()));
    }
}
