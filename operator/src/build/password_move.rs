//! The patch that takes an inline password out of the CR: the managed product keeps no
//! credentials on the task once it is created, and neither does the CR.

use adbsink_crd::{AnalyticDBSink, KeyRef, SECRET_KEY_DB_PASSWORD, credentials_secret_name};
use kube::ResourceExt;
use serde_json::{Value, json};

/// `kubectl apply` (client-side) keeps the whole manifest, password included, in this annotation.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The reference that replaces the inline password.
pub fn moved_reference(sink: &AnalyticDBSink) -> KeyRef {
    KeyRef {
        name: credentials_secret_name(&sink.name_any()),
        key: SECRET_KEY_DB_PASSWORD.to_string(),
    }
}

/// A merge patch removing `spec.destination.password` and setting `passwordSecretRef`, also in
/// the last-applied annotation. It carries the resourceVersion so a concurrent edit makes it
/// fail (and be retried) instead of dropping a password the user just set.
pub fn password_move_patch(sink: &AnalyticDBSink) -> Value {
    let reference = moved_reference(sink);
    let mut patch = json!({
        "metadata": {"resourceVersion": sink.resource_version()},
        "spec": {"destination": {"password": null, "passwordSecretRef": reference}},
    });
    if let Some(scrubbed) = sink
        .annotations()
        .get(LAST_APPLIED)
        .and_then(|text| scrub_last_applied(text, &reference))
    {
        patch["metadata"]["annotations"] = json!({ LAST_APPLIED: scrubbed });
    }
    patch
}

/// The annotation with the password replaced by the reference, so a later `kubectl apply` of
/// the same manifest moves a (new) inline password again. None when there is nothing to scrub.
fn scrub_last_applied(text: &str, reference: &KeyRef) -> Option<String> {
    let mut manifest: Value = serde_json::from_str(text).ok()?;
    let destination = manifest.pointer_mut("/spec/destination")?.as_object_mut()?;
    destination.remove("password")?;
    destination.insert("passwordSecretRef".into(), json!(reference));
    serde_json::to_string(&manifest).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testing::sink;

    #[test]
    fn removes_the_password_everywhere_and_references_the_credentials_secret() {
        let mut sink = sink("orders");
        sink.metadata.resource_version = Some("42".into());
        sink.spec.destination.password = Some("hunter2".into());
        sink.spec.destination.password_secret_ref = None;
        let manifest = json!({"spec": {"destination": {"username": "u", "password": "hunter2"}}});
        sink.metadata.annotations = Some(
            [(LAST_APPLIED.to_string(), manifest.to_string())]
                .into_iter()
                .collect(),
        );
        let patch = password_move_patch(&sink);
        assert!(!patch.to_string().contains("hunter2"), "{patch}");
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        assert_eq!(patch["spec"]["destination"]["password"], Value::Null);
        assert_eq!(
            patch["spec"]["destination"]["passwordSecretRef"],
            json!({"name": "orders-credentials", "key": "password"})
        );
        let scrubbed: Value = serde_json::from_str(
            patch["metadata"]["annotations"][LAST_APPLIED]
                .as_str()
                .expect("annotation"),
        )
        .expect("json");
        assert_eq!(
            scrubbed,
            json!({"spec": {"destination": {"username": "u",
                "passwordSecretRef": {"name": "orders-credentials", "key": "password"}}}})
        );
    }

    #[test]
    fn leaves_annotations_alone_when_they_hold_no_password() {
        let sink = sink("orders");
        assert!(
            password_move_patch(&sink)["metadata"]
                .get("annotations")
                .is_none()
        );
        let reference = moved_reference(&sink);
        assert_eq!(scrub_last_applied("{\"spec\":{}}", &reference), None);
        assert_eq!(scrub_last_applied("not json", &reference), None);
    }
}
