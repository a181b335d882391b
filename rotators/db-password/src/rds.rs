//! RDS-managed master secrets (`ManageMasterUserPassword`) hold only `username` and `password`.
//! As AWS's templates do, the database is found from the secret's system tag
//! (`aws:rds:primaryDBInstanceArn` or `aws:rds:primaryDBClusterArn`, which only RDS can set) and
//! `DescribeDBInstances` / `DescribeDBClusters`.

use serde_json::{Map, Value};

pub const INSTANCE_TAG: &str = "aws:rds:primaryDBInstanceArn";
pub const CLUSTER_TAG: &str = "aws:rds:primaryDBClusterArn";

#[derive(Debug, PartialEq, Eq)]
pub enum Primary {
    Instance(String),
    Cluster(String),
}

/// Where a database listens, as RDS reports it.
#[derive(Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub engine: String,
}

/// An RDS-managed secret's shape: exactly `username` and `password`.
pub fn is_managed_shape(fields: &Map<String, Value>) -> bool {
    fields.len() == 2 && fields.contains_key("username") && fields.contains_key("password")
}

/// The database a secret belongs to, from its tags (keys compared without case, as the templates
/// do).
pub fn primary_from_tags(tags: &[(String, String)]) -> Option<Primary> {
    tags.iter().find_map(|(key, value)| {
        if key.eq_ignore_ascii_case(INSTANCE_TAG) {
            Some(Primary::Instance(value.clone()))
        } else if key.eq_ignore_ascii_case(CLUSTER_TAG) {
            Some(Primary::Cluster(value.clone()))
        } else {
            None
        }
    })
}

/// The writer endpoint of the instance or cluster. Errors name the API and the ARN.
pub async fn endpoint(rds: &aws_sdk_rds::Client, primary: &Primary) -> Result<Endpoint, String> {
    use aws_sdk_rds::error::DisplayErrorContext;
    let found = match primary {
        Primary::Instance(arn) => {
            let _waiting = shared::retry::waiting_for("RDS DescribeDBInstances");
            let out = rds
                .describe_db_instances()
                .db_instance_identifier(arn)
                .send()
                .await;
            shared::fault::after_call("DescribeDBInstances");
            let out =
                out.map_err(|e| format!("DescribeDBInstances {arn}: {}", DisplayErrorContext(e)))?;
            out.db_instances().first().and_then(|i| {
                let ep = i.endpoint()?;
                Some((
                    ep.address()?.to_owned(),
                    ep.port()?,
                    i.engine().unwrap_or_default().to_owned(),
                ))
            })
        }
        Primary::Cluster(arn) => {
            let _waiting = shared::retry::waiting_for("RDS DescribeDBClusters");
            let out = rds
                .describe_db_clusters()
                .db_cluster_identifier(arn)
                .send()
                .await;
            shared::fault::after_call("DescribeDBClusters");
            let out =
                out.map_err(|e| format!("DescribeDBClusters {arn}: {}", DisplayErrorContext(e)))?;
            out.db_clusters().first().and_then(|c| {
                Some((
                    c.endpoint()?.to_owned(),
                    c.port()?,
                    c.engine().unwrap_or_default().to_owned(),
                ))
            })
        }
    };
    let (host, port, engine) = found.ok_or_else(|| {
        let (api, arn) = match primary {
            Primary::Instance(a) => ("DescribeDBInstances", a),
            Primary::Cluster(a) => ("DescribeDBClusters", a),
        };
        format!("{api} {arn}: no database with an endpoint")
    })?;
    let port = u16::try_from(port).map_err(|_| format!("RDS reported port {port}"))?;
    Ok(Endpoint { host, port, engine })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_names_the_database_in_any_case() {
        let tag = |k: &str| {
            vec![
                ("other".to_string(), "x".to_string()),
                (k.into(), "arn".into()),
            ]
        };
        assert_eq!(
            primary_from_tags(&tag("aws:rds:primaryDBInstanceArn")),
            Some(Primary::Instance("arn".into()))
        );
        assert_eq!(
            primary_from_tags(&tag("aws:rds:primarydbclusterarn")),
            Some(Primary::Cluster("arn".into()))
        );
        assert_eq!(primary_from_tags(&tag("rds:primaryDBInstanceArn")), None);
    }

    #[test]
    fn only_username_and_password_is_the_managed_shape() {
        let map = |v: Value| v.as_object().unwrap().clone();
        assert!(is_managed_shape(&map(
            serde_json::json!({"username": "u", "password": "p"})
        )));
        assert!(!is_managed_shape(&map(
            serde_json::json!({"username": "u", "password": "p", "host": "h"})
        )));
    }
}
