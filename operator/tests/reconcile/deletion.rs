//! The finalizer applies the deletion policy before the sink goes away.

use std::time::Duration;

use adbsink_crd::DeletionPolicy;

use crate::common::*;

async fn provisioned(h: &Harness, policy: DeletionPolicy) -> (String, String, Vec<String>) {
    let (name, source) = h
        .new_sink("del", 2, "pw", |s| s.spec.deletion_policy = policy)
        .await;
    h.reconcile(&name).await.expect("reconcile");
    let topics = internal_topics(&name);
    for topic in &topics {
        assert!(partitions(topic).is_some(), "{topic} was created");
    }
    assert!(group_exists(&format!("connect-{name}"), &source).await);
    (name, source, topics)
}

#[tokio::test]
async fn delete_policy_removes_created_topics_and_the_group() {
    bounded(async {
        let h = Harness::new().await;
        let (name, source, topics) = provisioned(&h, DeletionPolicy::Delete).await;
        assert_eq!(
            h.get(&name).await.metadata.finalizers,
            Some(vec!["adbsink.io/cleanup".into()])
        );

        h.reconcile_deletion(&name).await.expect("cleanup");
        for topic in &topics {
            eventually(
                &format!("{topic} deleted"),
                Duration::from_secs(30),
                || async { partitions(topic).is_none().then_some(()) },
            )
            .await;
        }
        assert!(!group_exists(&format!("connect-{name}"), &source).await);
        let after = h.get(&name).await;
        assert!(
            after.metadata.finalizers.unwrap_or_default().is_empty(),
            "finalizer removed"
        );
        assert_eq!(
            after.status.unwrap().phase,
            Some(adbsink_crd::Phase::Deleting)
        );
    })
    .await;
}

#[tokio::test]
async fn retain_policy_keeps_topics_and_group() {
    bounded(async {
        let h = Harness::new().await;
        let (name, source, topics) = provisioned(&h, DeletionPolicy::Retain).await;

        h.reconcile_deletion(&name).await.expect("cleanup");
        for topic in &topics {
            assert!(partitions(topic).is_some(), "{topic} retained");
        }
        let group = format!("connect-{name}");
        assert!(group_exists(&group, &source).await);
        assert!(
            h.get(&name)
                .await
                .metadata
                .finalizers
                .unwrap_or_default()
                .is_empty()
        );

        drop_kafka(&topics, &group).await;
    })
    .await;
}
