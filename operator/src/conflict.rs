//! Two sinks must not share a consumer group: they would split the partitions between them and
//! each commit offsets for rows the other wrote. The older sink keeps the group.

use adbsink_crd::{AnalyticDBSink, default_consumer_group};
use kube::ResourceExt;

/// The consumer group a sink uses.
pub fn consumer_group(sink: &AnalyticDBSink) -> String {
    sink.spec
        .runtime
        .consumer_group
        .clone()
        .unwrap_or_else(|| default_consumer_group(&sink.name_any()))
}

/// The oldest other sink that claims the same consumer group and is older than `me`
/// (creation time, then namespace/name, so the answer is the same from both sides).
pub fn older_claimant<'a>(
    me: &AnalyticDBSink,
    all: &'a [AnalyticDBSink],
) -> Option<&'a AnalyticDBSink> {
    let group = consumer_group(me);
    all.iter()
        .filter(|other| identity(other) != identity(me))
        .filter(|other| consumer_group(other) == group)
        .filter(|other| age_key(other) < age_key(me))
        .min_by(|a, b| age_key(a).cmp(&age_key(b)))
}

/// `namespace/name`, as shown in messages.
pub fn identity(sink: &AnalyticDBSink) -> String {
    format!(
        "{}/{}",
        sink.namespace().unwrap_or_default(),
        sink.name_any()
    )
}

fn age_key(sink: &AnalyticDBSink) -> (bool, Option<jiff::Timestamp>, String) {
    let created = sink.metadata.creation_timestamp.as_ref().map(|t| t.0);
    // Not yet persisted (no timestamp) sorts as the newest.
    (created.is_none(), created, identity(sink))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testing::sink;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn created(name: &str, namespace: &str, second: i64) -> AnalyticDBSink {
        let mut s = sink(name);
        s.metadata.namespace = Some(namespace.into());
        s.metadata.creation_timestamp =
            Some(Time(jiff::Timestamp::from_second(second).expect("ts")));
        s
    }

    fn with_group(mut s: AnalyticDBSink, group: &str) -> AnalyticDBSink {
        s.spec.runtime.consumer_group = Some(group.into());
        s
    }

    #[test]
    fn the_newer_sink_loses_the_shared_group() {
        let old = with_group(created("a", "ns1", 100), "shared");
        let new = with_group(created("b", "ns2", 200), "shared");
        let all = vec![old.clone(), new.clone()];
        assert_eq!(older_claimant(&old, &all), None);
        assert_eq!(
            older_claimant(&new, &all).map(identity),
            Some("ns1/a".into())
        );
    }

    #[test]
    fn ties_break_by_namespace_and_name() {
        let a = created("same", "aaa", 100);
        let b = created("same", "bbb", 100);
        let all = vec![a.clone(), b.clone()];
        assert_eq!(older_claimant(&a, &all), None);
        assert_eq!(
            older_claimant(&b, &all).map(identity),
            Some("aaa/same".into())
        );
    }

    #[test]
    fn different_groups_and_the_sink_itself_never_conflict() {
        let a = created("a", "ns", 100);
        let b = created("b", "ns", 50);
        assert_eq!(consumer_group(&a), "connect-a");
        assert_eq!(older_claimant(&a, &[a.clone(), b]), None);
    }
}
