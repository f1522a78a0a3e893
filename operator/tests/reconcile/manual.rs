//! resourceCreation Manual: the operator checks topics and group, never creates them.

use adbsink_crd::{InitialOffset, InternalTopic, Phase, ResourceCreation};
use adbsink_runtime::provision::GroupState;

use crate::common::*;

#[tokio::test]
async fn manual_mode_reports_missing_topics_until_they_exist() {
    bounded(async {
        let h = Harness::new().await;
        let (name, source) = h
            .new_sink("manual", 2, "pw", |s| {
                s.spec.runtime.resource_creation = ResourceCreation::Manual;
            })
            .await;

        h.reconcile(&name).await.expect("reconcile");
        let waiting = h.get(&name).await;
        assert_eq!(
            state(&waiting, "TopicsReady"),
            ("False".into(), "TopicsMissing".into())
        );
        let message = &condition(&waiting, "TopicsReady").message;
        let topics = InternalTopic::resolve_all(&name, &h.get(&name).await.spec.runtime);
        for topic in &topics {
            assert!(
                message.contains(&format!("{}: does not exist", topic.name)),
                "{message}"
            );
            assert_eq!(
                partitions(&topic.name),
                None,
                "Manual mode must not create {}",
                topic.name
            );
        }
        assert_eq!(
            state(&waiting, "Ready"),
            ("False".into(), "TopicsMissing".into())
        );
        assert_eq!(waiting.status.as_ref().unwrap().phase, Some(Phase::Pending));
        assert!(
            h.deployments
                .get_opt(&format!("{name}-sink"))
                .await
                .unwrap()
                .is_none()
        );

        // An administrator creates the topics; the group is still missing.
        let p = provisioner();
        let report = p
            .ensure_topics(
                &topics,
                None,
                ResourceCreation::Auto,
                &h.get(&name).await.spec.source.topic,
            )
            .await
            .unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        h.reconcile(&name).await.expect("reconcile");
        let group_missing = h.get(&name).await;
        assert_eq!(
            state(&group_missing, "TopicsReady"),
            ("True".into(), "TopicsExist".into())
        );
        assert_eq!(
            state(&group_missing, "ConsumerGroupReady"),
            ("False".into(), "GroupMissing".into())
        );

        // And the group: now the sink runs.
        let group = format!("connect-{name}");
        let created = p
            .ensure_group(
                &group,
                &source,
                InitialOffset::Earliest,
                ResourceCreation::Auto,
            )
            .await
            .unwrap();
        assert_eq!(created, GroupState::Created);
        h.reconcile(&name).await.expect("reconcile");
        h.set_ready_replicas(&name, 2).await;
        h.reconcile(&name).await.expect("reconcile");
        let ready = h.get(&name).await;
        assert_eq!(state(&ready, "Ready"), ("True".into(), "Ready".into()));
        assert_eq!(
            state(&ready, "ConsumerGroupReady"),
            ("True".into(), "GroupExists".into())
        );
        assert!(
            ready.status.as_ref().unwrap().created_topics.is_empty(),
            "topics the operator did not create are not its to delete"
        );

        let names: Vec<String> = topics.into_iter().map(|t| t.name).collect();
        drop_kafka(&names, &group).await;
    })
    .await;
}
