//! Staging-label bookkeeping with Secrets Manager's rules, shared by the in-memory store and the
//! protocol (which tracks the labels it moved instead of describing the secret again).

use super::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, StoreError};
use std::collections::BTreeMap;

/// Version id to the labels on it, as in `VersionIdsToStages`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(pub BTreeMap<String, Vec<String>>);

impl Labels {
    /// The version that carries `stage`, if any.
    pub fn version_with(&self, stage: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(_, stages)| stages.iter().any(|s| s == stage))
            .map(|(id, _)| id.as_str())
    }

    pub fn stages_of(&self, version_id: &str) -> Option<&[String]> {
        self.0.get(version_id).map(Vec::as_slice)
    }

    pub fn has(&self, version_id: &str, stage: &str) -> bool {
        self.stages_of(version_id)
            .is_some_and(|stages| stages.iter().any(|s| s == stage))
    }

    /// AWS's rule: a rotation is in progress while `AWSPENDING` sits on a version that is not
    /// `AWSCURRENT`.
    pub fn rotation_in_progress(&self) -> Option<&str> {
        self.version_with(AWSPENDING)
            .filter(|id| !self.has(id, AWSCURRENT))
    }

    fn attach(&mut self, version_id: &str, stage: &str) {
        let stages = self.0.entry(version_id.to_owned()).or_default();
        if !stages.iter().any(|s| s == stage) {
            stages.push(stage.to_owned());
        }
    }

    fn detach(&mut self, version_id: &str, stage: &str) {
        if let Some(stages) = self.0.get_mut(version_id) {
            stages.retain(|s| s != stage);
        }
    }

    /// Labels a new version with `stages`, taking each one off wherever it was; moving
    /// `AWSCURRENT` this way hands `AWSPREVIOUS` to its old holder (as `PutSecretValue` does).
    pub fn label_new_version(&mut self, version_id: &str, stages: &[&str]) {
        self.0.entry(version_id.to_owned()).or_default();
        for stage in stages {
            if let Some(old) = self.version_with(stage).map(str::to_owned) {
                if old == version_id {
                    continue;
                }
                self.detach(&old, stage);
                if *stage == AWSCURRENT {
                    self.hand_previous_to(&old, version_id);
                }
            }
            self.attach(version_id, stage);
        }
    }

    fn hand_previous_to(&mut self, old_current: &str, new_current: &str) {
        if let Some(prev) = self.version_with(AWSPREVIOUS).map(str::to_owned) {
            self.detach(&prev, AWSPREVIOUS);
        }
        self.attach(old_current, AWSPREVIOUS);
        self.detach(new_current, AWSPREVIOUS);
    }
}

/// `UpdateSecretVersionStage(stage, MoveToVersionId=to, RemoveFromVersionId=from)` with the
/// service's checks: a label already on another version must be named in `from`; `from` must
/// carry the label; moving `AWSCURRENT` hands `AWSPREVIOUS` to the version it left.
pub fn move_label(
    labels: &mut Labels,
    stage: &str,
    to: Option<&str>,
    from: Option<&str>,
) -> Result<(), StoreError> {
    if let Some(from) = from {
        if labels.stages_of(from).is_none() {
            return Err(StoreError::Refused(format!(
                "version {from} does not exist"
            )));
        }
        if !labels.has(from, stage) {
            return Err(StoreError::Refused(format!(
                "label {stage} is not on version {from}"
            )));
        }
    }
    if let Some(to) = to {
        if labels.stages_of(to).is_none() {
            return Err(StoreError::Refused(format!("version {to} does not exist")));
        }
        if let Some(holder) = labels.version_with(stage)
            && holder != to
            && Some(holder) != from
        {
            return Err(StoreError::Refused(format!(
                "label {stage} is attached to version {holder}: name it in RemoveFromVersionId"
            )));
        }
    }
    if let Some(from) = from {
        labels.detach(from, stage);
    }
    if let Some(to) = to {
        labels.attach(to, stage);
    }
    if stage == AWSCURRENT
        && let (Some(from), Some(to)) = (from, to)
        && from != to
    {
        labels.hand_previous_to(from, to);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(rows: &[(&str, &[&str])]) -> Labels {
        Labels(
            rows.iter()
                .map(|(id, st)| (id.to_string(), st.iter().map(|s| s.to_string()).collect()))
                .collect(),
        )
    }

    #[test]
    fn moving_current_hands_previous_to_the_old_holder() {
        let mut l = labels(&[
            ("v0", &[AWSPREVIOUS]),
            ("v1", &[AWSCURRENT]),
            ("v2", &[AWSPENDING]),
        ]);
        move_label(&mut l, AWSCURRENT, Some("v2"), Some("v1")).unwrap();
        assert_eq!(
            l,
            labels(&[
                ("v0", &[]),
                ("v1", &[AWSPREVIOUS]),
                ("v2", &[AWSPENDING, AWSCURRENT])
            ])
        );
    }

    #[test]
    fn a_label_on_another_version_must_be_named() {
        let mut l = labels(&[("v1", &[AWSCURRENT]), ("v2", &[AWSPENDING])]);
        let err = move_label(&mut l, AWSCURRENT, Some("v2"), None).unwrap_err();
        assert!(err.to_string().contains("attached to version v1"), "{err}");
        let err = move_label(&mut l, AWSCURRENT, Some("v2"), Some("v2")).unwrap_err();
        assert!(err.to_string().contains("not on version v2"), "{err}");
        assert_eq!(l, labels(&[("v1", &[AWSCURRENT]), ("v2", &[AWSPENDING])]));
    }

    #[test]
    fn removing_pending_only_detaches_it() {
        let mut l = labels(&[("v1", &[AWSPREVIOUS]), ("v2", &[AWSPENDING, AWSCURRENT])]);
        move_label(&mut l, AWSPENDING, None, Some("v2")).unwrap();
        assert_eq!(l, labels(&[("v1", &[AWSPREVIOUS]), ("v2", &[AWSCURRENT])]));
        assert_eq!(l.rotation_in_progress(), None);
    }

    #[test]
    fn new_version_takes_labels_from_others() {
        let mut l = labels(&[("v1", &[AWSCURRENT]), ("v2", &[AWSPENDING])]);
        l.label_new_version("v3", &[AWSPENDING]);
        assert_eq!(
            l,
            labels(&[("v1", &[AWSCURRENT]), ("v2", &[]), ("v3", &[AWSPENDING])])
        );
        assert_eq!(l.rotation_in_progress(), Some("v3"));
        l.label_new_version("v3", &[AWSCURRENT]);
        assert_eq!(l.version_with(AWSPREVIOUS), Some("v1"));
    }
}
