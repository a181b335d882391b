//! The stage gate every step passes first, from one `DescribeSecret`.

use crate::store::{AWSCURRENT, AWSPENDING, SecretMeta};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// The token is the `AWSPENDING` version: run the step.
    Pending,
    /// The token is already `AWSCURRENT` (with or without `AWSPENDING`, which finishSecret leaves
    /// for the service to remove): the rotation finished; the step is a no-op (finishSecret still
    /// retires, in case it crashed after moving the label).
    AlreadyCurrent,
}

pub fn check(meta: &SecretMeta, token: &str) -> Result<Gate, String> {
    if !meta.rotation_enabled {
        return Err("rotation is not enabled for this secret".into());
    }
    let Some(stages) = meta.labels.stages_of(token) else {
        return Err("the version is not a version of this secret".into());
    };
    if stages.iter().any(|s| s == AWSCURRENT) {
        return Ok(Gate::AlreadyCurrent);
    }
    if !stages.iter().any(|s| s == AWSPENDING) {
        return Err(format!(
            "the version is not labelled AWSPENDING (its labels: [{}]), so it is not being rotated to",
            stages.join(", ")
        ));
    }
    Ok(Gate::Pending)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AWSPREVIOUS, Labels};

    fn meta(enabled: bool, stages: &[&str]) -> SecretMeta {
        let mut labels = Labels::default();
        labels
            .0
            .insert("tok".into(), stages.iter().map(|s| s.to_string()).collect());
        labels.0.insert("other".into(), vec!["AWSCURRENT".into()]);
        SecretMeta {
            arn: "arn".into(),
            rotation_enabled: enabled,
            rotation_lambda_arn: None,
            rotation_schedule: None,
            rotation_window: None,
            kms_key_id: None,
            labels,
            tags: Vec::new(),
        }
    }

    /// One row of the decision table: rotation enabled, labels on the token (`None`: the token is
    /// not a version), and the outcome (`Err` holds part of the message).
    type Row<'a> = (bool, Option<&'a [&'a str]>, Result<Gate, &'a str>);

    #[test]
    fn decision_table() {
        let rows: &[Row] = &[
            (false, Some(&[AWSPENDING]), Err("rotation is not enabled")),
            (false, Some(&[AWSCURRENT]), Err("rotation is not enabled")),
            (true, None, Err("not a version of this secret")),
            (true, Some(&[AWSCURRENT]), Ok(Gate::AlreadyCurrent)),
            (
                true,
                Some(&[AWSCURRENT, AWSPENDING]),
                Ok(Gate::AlreadyCurrent),
            ),
            (true, Some(&[AWSPENDING]), Ok(Gate::Pending)),
            (
                true,
                Some(&[AWSPREVIOUS]),
                Err("not labelled AWSPENDING (its labels: [AWSPREVIOUS])"),
            ),
            (true, Some(&[]), Err("not labelled AWSPENDING")),
        ];
        for (enabled, stages, want) in rows {
            let mut m = meta(*enabled, stages.unwrap_or(&[]));
            if stages.is_none() {
                m.labels.0.remove("tok");
            }
            let got = check(&m, "tok");
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g),
                (Err(w), Err(g)) => assert!(g.contains(w), "{g} should contain {w}"),
                _ => panic!("row {enabled} {stages:?}: want {want:?}, got {got:?}"),
            }
        }
    }
}
